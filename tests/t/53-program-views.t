#!/usr/bin/env bash
# The views phase of the study's real programs (lewel_b at 224 px, and the
# halved-probability and single-transform experiments), every view replayed
# from params.jsonl through torchvision/PIL, and each transform firing as
# often as its p says.
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
LWLC=$(readlink -f "${LWLC:-${B:-build}/lwlc}")
PY=${LWL_PYTHON:-/usr/bin/python3}
if ! "$PY" -c 'import torch, torchvision, PIL' 2>/dev/null; then
    echo "1..0 # SKIP no torch/torchvision/PIL for $PY"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0
printf 'a\nb\nc\n' > "$tmp/classes.txt"     # the classes of program_views.py's data
for spec in lewel_b baseline_half solarize; do
    # the study's spec with its views as they are, on the test's three classes
    printf 'use "%s"\nname "%s"\ndata { classes "classes.txt" }\n' "$root/specs/$spec.lwl" \
        "$spec" > "$tmp/$spec.lwl"
    "$LWLC" --target cpu -o "$tmp/$spec" --emit-dir "$tmp/gen_$spec" "$tmp/$spec.lwl" 2>/dev/null
    "$LWLC" --print "$tmp/$spec.lwl" > "$tmp/$spec.printed" 2>/dev/null
    out=$(cd tests/oracle && "$PY" program_views.py "$tmp/$spec" 224 0,1 "$tmp/$spec.printed" 2>&1)
    if [ $? -ne 0 ] && ! grep -q '^not ok' <<<"$out"; then
        out="not ok 1 - program_views.py failed: $(tail -n 1 <<<"$out")"
    fi
    while IFS= read -r line; do
        case $line in
        "ok "*|"not ok "*)
            n=$((n + 1))
            [[ $line == not* ]] && fail=$((fail + 1))
            echo "$line" | sed -E "s/^(not ok|ok) [0-9]+ - /\1 $n - $spec: /";;
        *) echo "$line";;
        esac
    done <<<"$(grep -v '^1\.\.' <<<"$out")"
done
echo "1..$n"
[ "$fail" -eq 0 ]
