#!/usr/bin/env bash
# --names against tshark-made truth (../shared/pcaps/make_truth.py: tshark PDML, innermost
# tunnel addresses, optional rows for mDNS/LLMNR, SSDP and ICMP-quoted DNS):
#   pcaps/ (our generator) and ../shared/pcaps (real captures): recall and precision 1.0 for
#   every kind;
#   ../shared/pcaps-wide (476 nDPI traces, when present): at least 0.99 for every kind.
# Exit 77 when conformance.py is missing.
. "$(dirname "$0")/lib.sh"
conf=$TW_SHARED/tools/conformance.py
[ -f "$conf" ] || skip "conformance.py not found ($TW_SHARED/tools)"
$PY "$conf" --sensor "$TW_BIN" --show 20 --min-recall 1 --min-precision 1 "$TW_SRC/pcaps" ||
    fail "pcaps/ conformance below 1.0"
[ -d "$TW_SHARED/pcaps" ] || skip "$TW_SHARED/pcaps absent: only pcaps/ checked"
$PY "$conf" --sensor "$TW_BIN" --show 20 --min-recall 1 --min-precision 1 "$TW_SHARED/pcaps" ||
    fail "../shared/pcaps conformance below 1.0"
if [ -d "$TW_SHARED/pcaps-wide" ]; then
    $PY "$conf" --sensor "$TW_BIN" --show 20 --min-recall 0.99 --min-precision 0.99 \
        "$TW_SHARED/pcaps-wide" || fail "../shared/pcaps-wide conformance below 0.99"
else
    echo "note: $TW_SHARED/pcaps-wide absent, not checked"
fi
ok "conformance"
