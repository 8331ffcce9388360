#!/usr/bin/env bash
# On a machine with a GPU: the generated view kernels of four specs (bf16, fp32, fp16 and
# the grayscale experiment) run on the GPU over batches staged in pinned memory, their
# output compared bit for bit with the kernels emulated on the CPU, which equal views.c
# (tests/views/views_check.c, built by tests/views/build.sh --gpu). After `make`; a few
# minutes. Prints one line per spec and exits 1 on any mismatch.
cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
LWLC=${LWLC:-$B/lwlc}
PY=${LWL_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

"$LWLC" -S --emit-dir "$tmp/gen_fp16" -D train.precision=fp16 specs/baseline.lwl 2>/dev/null ||
    exit 1
tests/views/build.sh generated/baseline "$tmp/synth_tool" && "$tmp/synth_tool" --synth "$tmp" ||
    exit 1
files=(examples/images/*.jpg "$tmp"/synth_*.png)
if "$PY" tools/fmnist_to_imagefolder.py --per-class 10 "$tmp/fm" >/dev/null 2>&1; then
    mapfile -t fm < <(find "$tmp/fm" -type f | sort)
    files+=("${fm[@]}")
fi
for gen in generated/baseline generated/fashion_mnist "$tmp/gen_fp16" generated/gray_v1; do
    name=$(basename "$gen")
    if ! tests/views/build.sh "$gen" "$tmp/check" --gpu; then
        echo "views.sh: $name: the GPU check does not build"
        fail=1
        continue
    fi
    if out=$("$tmp/check" --epochs 3 --batch 16 "${files[@]}" 2>&1); then
        echo "views.sh: $name: ok: $(tail -n 1 <<<"$out")"
    else
        echo "views.sh: $name: FAILED"
        head -n 20 <<<"$out"
        fail=1
    fi
done
exit $fail
