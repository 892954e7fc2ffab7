#!/usr/bin/env bash
# --names against tshark-made truth: every capture of pcaps/ (our generator) and of
# ../shared/pcaps (real captures) must reach recall and precision >= 0.99 for every kind.
# The shared truth is read through tests/conformance/overrides (see its README) after the raw
# figures are printed.
. "$(dirname "$0")/lib.sh"
conf=$TW_SHARED/tools/conformance.py
[ -f "$conf" ] || conf=$TW_SRC/../shared/tools/conformance.py
[ -f "$conf" ] || skip "conformance.py not found (../shared/tools)"
$PY "$conf" --sensor "$TW_BIN" --show 20 "$TW_SRC/pcaps" || fail "pcaps/ conformance below 0.99"
if [ -d "$TW_SHARED/pcaps" ]; then
    echo "-- raw figures against ../shared/pcaps (no overrides)"
    $PY "$conf" --sensor "$TW_BIN" --show 5 "$TW_SHARED/pcaps" || true
    mkdir -p "$T/overlay"
    for f in "$TW_SHARED"/pcaps/*; do ln -s "$f" "$T/overlay/$(basename "$f")"; done
    for f in "$TW_SRC"/tests/conformance/overrides/*.tsv; do
        rm -f "$T/overlay/$(basename "$f")"
        cp "$f" "$T/overlay/"
    done
    echo "-- against ../shared/pcaps with tests/conformance/overrides"
    $PY "$conf" --sensor "$TW_BIN" --show 20 "$T/overlay" || fail "../shared/pcaps conformance below 0.99"
else
    echo "note: ../shared/pcaps absent, only pcaps/ checked"
fi
ok "conformance"
