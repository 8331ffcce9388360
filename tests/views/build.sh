#!/usr/bin/env bash
# Builds tests/views/views_check.c against one spec's generated views:
#   tests/views/build.sh GEN_DIR OUT          the kernels emulated on the CPU (views.cu as C)
#   tests/views/build.sh GEN_DIR OUT --gpu    also the real views.cu by nvcc, run on the GPU
# From the repository root, after make (build/liblwl.a, and build/liblwl_cuda.a for --gpu).
set -eu
gen=$1 out=$2 mode=${3:-}
B=${B:-build}
CC=${CC:-cc}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}
flags=(-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -Werror -Iruntime -Iruntime/cuda
       "-I$gen")
libs=("$B/liblwl.a" -ljpeg -lpng -lpthread -lm -lcjson)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$CC" "${flags[@]}" -c -o "$tmp/views.o" "$gen/views.c"
"$CC" "${flags[@]}" -DLWL_VIEWS_EMULATE -x c -c -o "$tmp/emu.o" "$gen/views.cu"
if [ "$mode" != --gpu ]; then
    "$CC" "${flags[@]}" -c -o "$tmp/check.o" tests/views/views_check.c
    "$CC" -o "$out" "$tmp/check.o" "$tmp/views.o" "$tmp/emu.o" "${libs[@]}"
    exit 0
fi
"$NVCC" -O3 -std=c++17 --Werror all-warnings -Xcompiler -Wall,-Wextra -D_GNU_SOURCE \
    ${CUDA_ARCH_FLAGS:--gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90} \
    -Iruntime -Iruntime/cuda -c -o "$tmp/gpu.o" "$gen/views.cu"
"$CC" "${flags[@]}" -DVIEWS_CHECK_GPU "-I$CUDA_HOME/include" -c -o "$tmp/check.o" \
    tests/views/views_check.c
"${CXX:-c++}" -o "$out" "$tmp/check.o" "$tmp/views.o" "$tmp/emu.o" "$tmp/gpu.o" \
    "$B/liblwl_cuda.a" "${libs[@]}" "-L$CUDA_HOME/lib64" "-Wl,-rpath,$CUDA_HOME/lib64" -lcudart
