#!/usr/bin/env bash
# Every spec of specs/ and examples/ builds for CUDA: lwlc --target cuda writes net.cu,
# nvcc compiles it for the default architectures (sm_80, sm_90) with every warning an
# error (host compiler's too), and the program links with cuDNN, cuBLAS and NCCL; so do the
# kernel comparisons of tests/gpu/kernels.cu. Nothing runs: this machine has no GPU
# (tests/gpu/ runs them where there is one).
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh
root=$PWD
LWLC=$(readlink -f "$LWLC")
B=${B:-build}
if ! "$LWLC" --help | grep -q -- --target || [ ! -f "$B/liblwl_cuda.a" ]; then
    echo "1..0 # SKIP no CUDA build here (no nvcc, or $B/liblwl_cuda.a not made)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

specs=$(ls specs/*.lwl examples/*.lwl)
# two at a time: nvcc is slow and this machine has two cores
printf '%s\n' $specs | xargs -P2 -I{} sh -c '
    n=$(basename {} .lwl)
    "$1" --target cuda -o "$2/$n" --emit-dir "$2/gen_$n" {} 2>"$2/$n.err"
    echo $? > "$2/$n.rc"' sh "$LWLC" "$tmp"
for s in $specs; do
    n=$(basename "$s" .lwl)
    ok "$n: builds for CUDA, no nvcc or host-compiler warning" test "$(cat "$tmp/$n.rc")" = 0
    if [ "$(cat "$tmp/$n.rc")" != 0 ]; then
        sed 's/^/# /' "$tmp/$n.err" | head -20
    fi
done
# The GPU check's kernel comparisons (tests/gpu/kernels.cu, the kNN's among them; run by
# tests/gpu/run.sh on a GPU) compile and link here too, for one architecture.
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}
ok "tests/gpu/kernels.cu compiles (sm_90, warnings as errors) and links" \
    "$NVCC" -O3 -std=c++17 --Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror \
    -Xcompiler -Wno-unused-function -D_GNU_SOURCE -gencode arch=compute_90,code=sm_90 \
    -Icompiler/tmpl -Iruntime -Iruntime/cuda "-I$CUDA_HOME/include" tests/gpu/kernels.cu \
    "$B/liblwl_cuda.a" "-L$CUDA_HOME/lib64" -lcudnn -lcublasLt -lcublas -lnccl -lcudart \
    "$B/liblwl.a" -ljpeg -lpng -lpthread -lm -ldnnl -lopenblas -lgomp -lcjson -lgsl \
    $(mpicc --showme:link 2>/dev/null) -o "$tmp/kernels"
# The CUDA program is the CPU program too: it says where it runs.
out=$("$tmp/fashion_mnist" --data "$root/examples" --out "$tmp/run" --device cuda scan 2>&1)
is "$?" 1 "without a GPU, --device cuda is refused (exit 1)"
is "$(grep -c 'no GPU is usable here' <<<"$out")" 1 "... saying why"
ok "--device auto falls back to the CPU, saying so" \
    sh -c "'$tmp/fashion_mnist' --data '$root/tests/golden' --out '$tmp/run' scan 2>&1 |
           grep -q 'device: CPU'"
finish
