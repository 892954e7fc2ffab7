#!/usr/bin/env bash
# tests/conformance/truth_inner.sh against the shared truth: for every capture of
# ../shared/pcaps it must print exactly the bytes of CAPTURE.truth.tsv, except for the captures
# with a file in tests/conformance/overrides/, where it must print exactly that override.
# So the overrides are tshark's own rows with the innermost IP header (see
# tests/conformance/README.md), and the script changes nothing else. Exit 77 = skip when
# tshark or ../shared/pcaps is missing.
. "$(dirname "$0")/lib.sh"
TI=$TW_SRC/tests/conformance/truth_inner.sh
OV=$TW_SRC/tests/conformance/overrides
command -v tshark >/dev/null || skip "tshark not installed (apt-get install tshark)"
[ -d "$TW_SHARED/pcaps" ] || skip "$TW_SHARED/pcaps absent"
[ -f "$TI" ] || fail "$TI missing"

# every override belongs to a shared capture
for o in "$OV"/*.truth.tsv; do
    [ -f "$o" ] || continue
    [ -f "$TW_SHARED/pcaps/$(basename "$o" .truth.tsv)" ] || fail "override $(basename "$o") has no capture in $TW_SHARED/pcaps"
done

n=0 nov=0 bad=0
for cap in "$TW_SHARED"/pcaps/*.pcap "$TW_SHARED"/pcaps/*.pcapng; do
    [ -f "$cap" ] || continue
    name=$(basename "$cap")
    want=$TW_SHARED/pcaps/$name.truth.tsv
    what="shared truth"
    if [ -f "$OV/$name.truth.tsv" ]; then want=$OV/$name.truth.tsv; what="override"; nov=$((nov + 1)); fi
    [ -f "$want" ] || { echo "FAIL: $name has no $what file" >&2; bad=$((bad + 1)); continue; }
    bash "$TI" "$cap" >"$T/out.tsv"
    if ! cmp -s "$T/out.tsv" "$want"; then
        echo "FAIL: $name: truth_inner.sh differs from the $what (< script, > $what):" >&2
        diff "$T/out.tsv" "$want" | head -20 >&2 || true
        bad=$((bad + 1))
    fi
    n=$((n + 1))
done
[ "$n" -gt 0 ] || fail "no capture in $TW_SHARED/pcaps"
[ "$bad" -eq 0 ] || fail "$bad of $n captures differ"
ok "truth_inner.sh: $n captures byte-identical ($((n - nov)) to the shared truth, $nov to the override)"
