#!/usr/bin/env bash
# Data path benchmark: decode + both views of the full LEWEL_B policy at 224 (+ normalise), one
# thread, images/s of liblwl (build/lwl-lewelb bench) against the torchvision/PIL pipeline on the
# same files; prints both and their ratio. Usage: bench/data.sh [IMAGES]  (B=build dir)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
PY=${LWL_PYTHON:-/usr/bin/python3}
n=${1:-400}
tool="$here/$B/lwl-lewelb"
[ -x "$tool" ] || { echo "bench/data.sh: $tool not built (make B=$B $B/lwl-lewelb)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 50 photographs of ImageNet's size (500x375, quality 90) from the sample photos.
"$PY" "$here/bench/data_ref.py" make "$here/examples/images" "$tmp/data" 50
# Both on one core (ours: one loader worker; the consumer thread only waits).
pin=""
command -v taskset >/dev/null 2>&1 && pin="taskset -c 0"
ours=$($pin "$tool" --threads 1 bench "$tmp/data" "$tmp/out" "$n" |
       sed -n 's/.* \([0-9.]*\) img\/s$/\1/p')
ref=$($pin "$PY" "$here/bench/data_ref.py" ref "$tmp/data" "$((n / 4))")
echo "data path, decode + 2 LEWEL_B views at 224, 1 thread, $n images (reference $((n / 4))):"
echo "  liblwl       $ours img/s"
echo "  torchvision  $ref img/s"
awk -v a="$ours" -v b="$ref" 'BEGIN { printf "  ratio        %.2fx\n", a / b }'
