#!/usr/bin/env bash
# The GPU views of the study's specs, their kernels emulated on the CPU thread by thread
# (tests/views/views_check.c, built against generated/<spec>/views.c and views.cu), on the
# sample photographs, synthetic images that reach every path of the resize, and a small
# Fashion-MNIST tree: staged batches the same bytes for any thread count, params equal to
# make()'s record, staged pixels equal to the decoded box, the emulated view equal to
# views.c's bytes, and its normalised output equal to the loader's within the cast's rounding.
# Shared memory as on sm_90 (227 KB), sm_80 (163 KB) and far less (the view in scratch).
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh
LWLC=$(readlink -f "$LWLC")
PY=${LWL_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run NAME BIN ARGS...: one check, its summary line shown.
run() {
    local name=$1; shift
    local out
    out=$("$@" 2>&1)
    local rc=$?
    tail -n 1 <<<"$out" | sed 's/^/# /'
    _n=$((_n + 1))
    if [ $rc -eq 0 ]; then
        echo "ok $_n - $name"
    else
        echo "not ok $_n - $name"
        head -n 20 <<<"$out" | sed 's/^/# /'
        _fail=$((_fail + 1))
    fi
}

mkdir -p "$tmp/synth"
ok "the checker builds" tests/views/build.sh generated/baseline "$tmp/check_baseline"
ok "synthetic images" "$tmp/check_baseline" --synth "$tmp/synth"
files=(examples/images/*.jpg "$tmp"/synth/*.png)
if "$PY" tools/fmnist_to_imagefolder.py --per-class 4 "$tmp/fm" >/dev/null 2>&1; then
    mapfile -t fm < <(find "$tmp/fm" -type f | sort)
    files+=("${fm[@]}")
else
    echo "# no Fashion-MNIST tree (tools/fmnist_to_imagefolder.py failed): photographs only"
fi

for spec in baseline grayscale gray_v1 solarize gaussian_blur color_jitter baseline_half \
            fashion_mnist; do
    bin="$tmp/check_$spec"
    [ -x "$bin" ] || ok "$spec: the checker builds" tests/views/build.sh "generated/$spec" "$bin"
    run "$spec: GPU views equal the CPU's (sm_90's shared memory)" "$bin" --epochs 2 \
        "${files[@]}"
done
run "baseline: sm_80's shared memory" "$tmp/check_baseline" --smem 166912 --seed 3 \
    "${files[@]}"
run "baseline: 9000 shared bytes, 64 threads (the view in scratch)" "$tmp/check_baseline" \
    --smem 9000 --threads 64 --seed 4 "${files[@]}"
run "fashion_mnist: sm_80's shared memory, 37 threads" "$tmp/check_fashion_mnist" \
    --smem 166912 --threads 37 --seed 5 "${files[@]}"

# The third element type.
"$LWLC" -S --emit-dir "$tmp/gen_fp16" -D train.precision=fp16 specs/baseline.lwl 2>/dev/null
ok "baseline as fp16: the checker builds" tests/views/build.sh "$tmp/gen_fp16" "$tmp/check_fp16"
run "baseline as fp16: GPU views equal the CPU's" "$tmp/check_fp16" --seed 6 "${files[@]}"
finish
