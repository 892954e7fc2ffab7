#!/usr/bin/env bash
# --selftest-rules: every loaded rule of conf/rules and of the SigmaHQ snapshot in ../shared/sigma
# fires on an observation built from its own values and not on a look-alike (both process
# filter policies); -T prints the field map; the snapshot's skips each name a field or construct.
. "$(dirname "$0")/lib.sh"
"$TW_BIN" --selftest-rules -R "$TW_SRC/conf/rules" >"$T/own.txt" || { cat "$T/own.txt"; fail "conf/rules selftest"; }
grep -q "^selftest: 12 rules, 12 passed, 0 failed$" "$T/own.txt" || fail "conf/rules: $(tail -1 "$T/own.txt")"
ok "conf/rules: $(tail -1 "$T/own.txt")"
"$TW_BIN" -T -R "$TW_SRC/conf/rules" >"$T/check.txt" || fail "-T exit $?"
grep -qE '^#   Initiated +network_connection +' "$T/check.txt" || fail "-T: no field map row for Initiated"
grep -qE '^#   c-useragent +proxy/webserver +User-Agent header' "$T/check.txt" || fail "-T: no c-useragent row"
ok "-T prints the field map"
SIGMA="$TW_SHARED/sigma"
[ -d "$SIGMA" ] || skip "$SIGMA not present"
for filters in skip drop; do
    "$TW_BIN" --selftest-rules -R "$SIGMA" --set rules.on_unsupported=skip \
        --set rules.unobservable_filters=$filters >"$T/sigma.txt" 2>"$T/sigma.err" ||
        { grep FAIL "$T/sigma.txt"; fail "sigma selftest ($filters)"; }
    grep -qE "^selftest: [0-9]+ rules, [0-9]+ passed, 0 failed$" "$T/sigma.txt" || fail "sigma ($filters)"
    ok "sigma, unobservable_filters=$filters: $(tail -1 "$T/sigma.txt")"
done
# every skip names a field outside the map or an unsupported construct
"$TW_BIN" -T -R "$SIGMA" --set rules.on_unsupported=skip >"$T/t.out" 2>"$T/t.err" || fail "-T sigma"
if grep -v "skipped: \(field '\|filter '\|modifier '\|keyword search\)" "$T/t.err" | grep -q .; then
    grep -v "skipped: \(field '\|filter '\|modifier '\|keyword search\)" "$T/t.err" >&2
    fail "a skip without a named field"
fi
# the SigmaHQ tunnelling family loads
for id in c4568f5d-131f-4e78-83d4-45b2da0ec4f1 3ab65069-d82a-4d44-a759-466661a082d1 \
    7cd1dcdc-6edf-4896-86dc-d1f19ad64903 9501f8e6-8e3d-48fc-a8a6-1089dd5d7ef4 \
    9e02c8ec-02b9-43e8-81eb-34a475ba7965 07837ab9-60e1-481f-a74d-c31fb496a94c; do
    grep -q "^#   $id " "$T/t.out" || fail "tunnelling rule $id not loaded"
done
ok "tunnelling family loads; $(grep '^# rules:' "$T/t.out")"
