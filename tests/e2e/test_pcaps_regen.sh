#!/bin/bash
# test_pcaps_regen.sh: the committed captures in pcaps/ are exactly what scripts/gen_pcaps.py makes,
# and tshark (through $TW_SHARED/pcaps/make_truth.py) sees the same names as the committed truth files.
#
# 1. Regenerate every capture, truth file and side file into a temporary folder and require each
#    to be byte-identical to pcaps/ (no file missing, none stale, none extra except README.md).
# 2. For every capture MANIFEST.tsv marks tshark-visible ("yes", or "names" for the tunnel captures),
#    run the shared corpus's reference truth maker ($TW_SHARED/pcaps/make_truth.py: tshark PDML,
#    innermost tunnel addresses) and require it to print CAPTURE.truth.tsv byte for byte.
# Exit 77 (skipped) when python3-cryptography or tshark/make_truth.py is missing.
set -u
src=${TW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
shared=${TW_SHARED:-$src/../shared}
py=/usr/bin/python3
pcaps=$src/pcaps

if ! "$py" -c 'import cryptography' 2>/dev/null; then
  echo "SKIP: $py cannot import cryptography (apt-get install python3-cryptography)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail=0
"$py" "$src/scripts/gen_pcaps.py" --out "$tmp/gen" || { echo "FAIL: gen_pcaps.py exited $?"; exit 1; }

# Same file set (README.md is hand-written) and the same bytes.
(cd "$tmp/gen" && ls) | sort >"$tmp/gen.list"
(cd "$pcaps" && ls) | grep -vx 'README.md' | sort >"$tmp/committed.list"
if ! diff "$tmp/committed.list" "$tmp/gen.list" >"$tmp/list.diff"; then
  echo "FAIL: file sets differ (< committed only, > generated only):"
  cat "$tmp/list.diff"
  fail=1
fi
n=0
while read -r f; do
  [ -f "$pcaps/$f" ] || continue
  n=$((n + 1))
  if ! cmp -s "$tmp/gen/$f" "$pcaps/$f"; then
    echo "FAIL: $f differs from the regenerated file"
    fail=1
  fi
done <"$tmp/gen.list"
echo "regenerated $n files, byte comparison done"

# The folder stays small.
size=$(du -sk "$pcaps" | cut -f1)
if [ "$size" -ge 2048 ]; then
  echo "FAIL: pcaps/ is ${size} KB, more than 2 MB"
  fail=1
fi

# Every capture has a truth file and a README entry.
for c in $(cut -f1 "$pcaps/MANIFEST.tsv" | grep -v '^#'); do
  [ -f "$pcaps/$c.truth.tsv" ] || { echo "FAIL: $c has no truth file"; fail=1; }
  grep -q -- "$c" "$pcaps/README.md" || { echo "FAIL: $c is not described in pcaps/README.md"; fail=1; }
done

[ $fail -eq 0 ] || exit 1

truth=$shared/pcaps/make_truth.py
if ! command -v tshark >/dev/null 2>&1 || [ ! -f "$truth" ]; then
  echo "SKIP: regeneration is byte-identical, but tshark or $truth is absent: no tshark cross-check"
  exit 77
fi

agreed=0
while IFS=$'\t' read -r cap _lt _frames _rows vis _desc; do
  case "$cap" in '#'* | '') continue ;; esac
  case "$vis" in
    yes | names) ;;
    *) continue ;;
  esac
  "$py" "$truth" "$pcaps/$cap" 2>/dev/null >"$tmp/tshark.tsv"
  if diff "$pcaps/$cap.truth.tsv" "$tmp/tshark.tsv" >"$tmp/d"; then
    agreed=$((agreed + 1))
  else
    echo "FAIL: tshark disagrees with $cap.truth.tsv (< truth, > tshark):"
    head -20 "$tmp/d"
    fail=1
  fi
done <"$pcaps/MANIFEST.tsv"
echo "tshark agrees on $agreed captures"
# A cross-check that compared nothing would prove nothing.
[ "$agreed" -ge 20 ] || { echo "FAIL: only $agreed captures cross-checked"; fail=1; }
exit $fail
