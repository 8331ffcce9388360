#!/usr/bin/env bash
# The study: every experiment of specs/ built and run, then its tables.
#   tools/study.sh full DATA    every spec of specs/ on the ImageNet-100 tree DATA, as
#                               written (2 GPUs' batch, 100 epochs, 3 repeats), into
#                               runs/study/, then tables I-IV (needs a GPU machine in
#                               practice; on a CPU it runs, for weeks)
#   tools/study.sh mini         Table I/II's experiments scaled down to the demo's
#                               Fashion-MNIST tree and model (make study-mini)
# Each experiment is built with its own views as the study writes them; `mini` only
# replaces data, model size, schedule and evaluation by the demo's.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${LWL_PYTHON:-/usr/bin/python3}
mode=${1:-}
here=$PWD

case $mode in
full)
    data=${2:?usage: tools/study.sh full DATA}
    mkdir -p build/study
    for spec in specs/*.lwl; do
        name=$(basename "$spec" .lwl)
        [ "$name" = lewel_b ] && continue
        build/lwlc -o "build/study/$name" --emit-dir "build/study/gen_$name" "$spec"
        "build/study/$name" --data "$data" --out "runs/study/$name" --resume
    done
    "$PY" tools/lwl_tables.py --study runs/study --out runs/study
    cat runs/study/tables.md
    ;;
mini)
    data=data/fashion_mnist
    per_class=${DEMO_PER_CLASS:-200}
    epochs=${MINI_EPOCHS:-4}
    if [ ! -f "$data/.complete_$per_class" ]; then
        rm -rf "$data"
        "$PY" tools/fmnist_to_imagefolder.py --per-class "$per_class" "$data"
        touch "$data/.complete_$per_class"
    fi
    mkdir -p build/study-mini
    ls "$data" | grep -v '^\.' > build/study-mini/classes.txt
    for name in baseline resized_crop color_jitter gaussian_blur solarize grayscale \
                horizontal_flip; do
        spec=build/study-mini/$name.lwl
        cat > "$spec" <<LWL
# Table I/II's $name scaled down to the CPU demo (written by tools/study.sh mini).
use "$here/specs/$name.lwl"
name "$name"
data    { root "$here/$data"; classes "classes.txt"; split train 70% val 20% test 10% }
augment { size 32 }
model   { backbone resnet18; stem small; hidden 512; dim 128 }
train   { epochs $epochs; batch 32; gpus 1; lr 0.1125; warmup 1; precision fp32 }
eval    { knn { every 0; memory train; queries val }
          linear { epochs 4; batch 64; lr 0.1; milestones [3]; train train; test test }
          repeat 1 }
LWL
        build/lwlc --target cpu -o "build/study-mini/$name" --emit-dir "build/study-mini/gen_$name" "$spec"
        echo "== $name"
        "build/study-mini/$name" --out "runs/study-mini/$name" --resume --quiet
        grep '^| pre-trained' "runs/study-mini/$name/summary.md" || true
    done
    "$PY" tools/lwl_tables.py --study runs/study-mini --out runs/study-mini
    cat runs/study-mini/tables.md
    ;;
*)
    echo "usage: tools/study.sh mini | tools/study.sh full DATA" >&2
    exit 2
    ;;
esac
