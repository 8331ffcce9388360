#!/usr/bin/env bash
# `make demo`: the CPU demo end to end on real data. Prepares a Fashion-MNIST
# ImageFolder tree from Debian's dataset-fashion-mnist, builds
# examples/fashion_mnist.lwl with lwlc, runs its whole protocol (pre-training
# with the kNN monitor, kNN and linear evaluation of the pre-trained and the
# random backbone, Grad-CAM, the report), draws the training curves and says
# where everything is. About 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${LWL_PYTHON:-/usr/bin/python3}
data=data/fashion_mnist
out=runs/fashion_mnist
per_class=${DEMO_PER_CLASS:-200}

if [ ! -f "$data/.complete_$per_class" ]; then
    echo "demo: writing $per_class images per class of Fashion-MNIST to $data"
    rm -rf "$data"
    "$PY" tools/fmnist_to_imagefolder.py --per-class "$per_class" "$data"
    touch "$data/.complete_$per_class"
fi

echo "demo: build/lwlc --target cpu examples/fashion_mnist.lwl"
mkdir -p build/demo
build/lwlc --target cpu -o build/demo/fashion_mnist --emit-dir build/demo/generated examples/fashion_mnist.lwl

echo "demo: running its protocol into $out (progress below)"
rm -rf "$out"
start=$(date +%s)
build/demo/fashion_mnist --data "$data" --out "$out"
"$PY" tools/plot_curves.py "$out" --out "$out/curves" >/dev/null
secs=$(( $(date +%s) - start ))

echo
echo "demo: done in $((secs / 60)) min $((secs % 60)) s"
echo "  summary:   $out/summary.md, $out/summary.json"
echo "  curves:    $(ls "$out"/curves/*.png | tr '\n' ' ')"
echo "  grad-cam:  $(ls "$out"/gradcam/*.png | tr '\n' ' ')"
echo "  weights:   $out/backbone.safetensors (torchvision names), $out/linear.safetensors"
echo "  per step:  $out/metrics.jsonl"
