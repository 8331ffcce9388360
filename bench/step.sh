#!/usr/bin/env bash
# Training step benchmark: one LEWEL_B pre-training step on the CPU (online forward and backward
# of both views, target forward of both, loss, LARS, EMA), ms/step of the program lwlc builds
# (its `bench` phase) against the same model in PyTorch (bench/step_ref.py), same batch, fp32,
# same thread count; prints both and their ratio for each configuration. Not a test.
# Usage: bench/step.sh [THREADS]   (B=build dir holding lwlc and liblwl.a; default build)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
PY=${LWL_PYTHON:-/usr/bin/python3}
threads=${1:-2}
lwlc="$here/$B/lwlc"
[ -x "$lwlc" ] || { echo "bench/step.sh: $lwlc not built (make B=$B)" >&2; exit 1; }
# lwlc links $LWL_HOME/build/liblwl.a: point it at this build's library.
home=$(mktemp -d)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$home"' EXIT
mkdir -p "$home/build"
ln -s "$here/runtime" "$home/runtime"
ln -s "$here/$B/liblwl.a" "$home/build/liblwl.a"
"$PY" "$here/tools/fmnist_to_imagefolder.py" --per-class 20 "$tmp/data" >/dev/null

# name | lwlc -D overrides of tests/specs/tiny.lwl | step_ref.py arguments (the same model)
configs=(
    "resnet18 small stem, 32 px, batch 32|-D train.batch=32|--backbone resnet18 --stem small
     --size 32 --batch 32"
    "resnet50 imagenet stem, 64 px, batch 16|-D train.batch=16 -D model.backbone=resnet50
     -D model.stem=imagenet -D augment.size=64|--backbone resnet50 --stem imagenet --size 64
     --batch 16"
)
echo "LEWEL_B step, fp32, $threads threads; head hidden 64, dim 32, heads 4 (tests/specs/tiny.lwl)"
for c in "${configs[@]}"; do
    IFS='|' read -r name defs ref <<<"$(tr '\n' ' ' <<<"$c")"
    # shellcheck disable=SC2086
    LWL_HOME=$home "$lwlc" --target cpu -o "$tmp/prog" --emit-dir "$tmp/gen" $defs "$here/tests/specs/tiny.lwl"
    # ours: the program's bench phase, mean of 5 steps after one warm-up step
    ours=$(cd "$tmp" && ./prog --quiet --data data --out out --threads "$threads" bench \
           >/dev/null && sed 's/.*"step": {[^}]*"ms": \([0-9.]*\).*/\1/' out/bench.json)
    # the program's OpenMP threads sleep while they wait (runtime/lwl_train.c): so do PyTorch's,
    # or on a shared machine its spinning threads lose their cores to the other processes
    # shellcheck disable=SC2086
    theirs=$(OMP_WAIT_POLICY=PASSIVE "$PY" "$here/bench/step_ref.py" $ref --threads "$threads" \
             --warmup 2 --steps 5)
    echo "$name:"
    echo "  lwlc     $ours ms/step"
    echo "  PyTorch  $theirs ms/step"
    awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "  ratio    %.2fx faster\n", b / a }'
done
