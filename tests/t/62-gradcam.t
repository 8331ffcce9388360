#!/usr/bin/env bash
# Grad-CAM at every layer against PyTorch. A small program per layer (tests/specs/tiny.lwl with
# -D eval.gradcam.layer=layerN) pre-trains 20 steps on Fashion-MNIST, trains its linear
# classifier and writes the heatmaps of three photographs with their numbers
# (gradcam/<image>.safetensors); tests/oracle/gradcam_check.py computes Grad-CAM at the same
# layer with torchvision's ResNet, the program's weights and hooks, in float64, and checks the
# logits, alpha, the map and the heat within 1e-4, and that the heat of every other layer and
# alpha without the eval-mode BN scales in backward miss the program's by more than 0.05.
# Small stem: layer2, layer3, layer4; imagenet stem (64 px): layer1. A program built for the
# GPU (the emulated one of tests/emu) runs Grad-CAM on its CPU network: the same bytes.
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh
root=$PWD
LWLC=$(readlink -f "$LWLC")
PY=${LWL_PYTHON:-/usr/bin/python3}
B=${B:-build}
if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
    echo "1..0 # SKIP no torch/torchvision for $PY"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" tools/fmnist_to_imagefolder.py --per-class 6 "$tmp/data" >/dev/null || exit 1
cd "$tmp" || exit 1
im="$root/examples/images"
images='["'$im'/bird.jpg", "'$im'/cat.jpg", "'$im'/dog.jpg"]'

# build NAME LAYER [-D ...]: a program with Grad-CAM at LAYER, 4 epochs of 5 steps
build() {
    local name=$1 layer=$2; shift 2
    "$LWLC" -o "$name" --emit-dir "gen/$name" -D train.epochs=4 -D eval.knn.every=0 \
        -D eval.linear.epochs=2 -D eval.linear.batch=16 -D "eval.gradcam.layer=$layer" \
        -D "eval.gradcam.images=$images" "$@" "$root/tests/specs/tiny.lwl"
}

variants=(
    "small2 layer2 --target cpu"
    "small3 layer3 --target cpu"
    "small4 layer4 --target cpu"
    "imagenet1 layer1 --target cpu -D model.stem=imagenet -D augment.size=64"
)
for v in "${variants[@]}"; do
    set -- $v
    name=$1 layer=$2 stem=small
    shift 2
    case $name in imagenet*) stem=imagenet ;; esac
    ok "$name: lwlc builds Grad-CAM at $layer" build "$name" "$layer" "$@"
    ok "$name: pretrain, linear and gradcam run" ./"$name" --quiet --data data \
        --out "run_$name" --threads 2 pretrain linear gradcam
    ok "$name: a PNG and its numbers per image" bash -c "
        for f in bird cat dog; do
            [ -s run_$name/gradcam/\$f.png ] && [ -s run_$name/gradcam/\$f.safetensors ] ||
                { echo missing \$f; exit 1; }
        done"
    "$PY" "$root/tests/oracle/gradcam_check.py" "run_$name" --layer "$layer" --stem "$stem" \
        >"$name.log" 2>&1
    rc=$?
    sed 's/^/# /' "$name.log"
    is "$rc" 0 "$name: the heatmaps at $layer equal PyTorch's (hooks, float64) within 1e-4"
done

# The GPU program: its gradcam phase on --device cuda copies the state to the CPU network.
if [ -f "$root/$B/emu/lwl_gpu_emu.o" ]; then
    export LWLC_GPU_EMULATE=1
    ok "gpu3: lwlc builds the layer3 program against the emulated GPU" build gpu3 layer3
    mkdir -p run_gpu3
    cp run_small3/checkpoint.safetensors run_small3/linear.safetensors run_gpu3/
    out=$(./gpu3 --data data --out run_gpu3 --threads 2 --device cuda gradcam 2>&1)
    is "$?" 0 "gpu3: gradcam runs on --device cuda"
    is "$(grep -c 'on the CPU network' <<<"$out")" 1 "... saying it runs on the CPU network"
    ok "... with the CPU program's bytes (state, classifier and code the same)" bash -c '
        for f in bird cat dog; do
            cmp run_gpu3/gradcam/$f.safetensors run_small3/gradcam/$f.safetensors &&
            cmp run_gpu3/gradcam/$f.png run_small3/gradcam/$f.png || exit 1
        done'
else
    echo "# SKIP the GPU program's Grad-CAM: $B/emu/lwl_gpu_emu.o not built (make)"
fi
finish
