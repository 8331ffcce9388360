#!/usr/bin/env bash
# The generated views.cu: specialised like views.c (p 0 leaves no code, p 1 no test of what
# fired, constants as literals); nvcc compiles every spec's for sm_80 and sm_90 with
# warnings as errors, and the GPU check of tests/gpu/views.sh links (it runs on a GPU).
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh

b1() { sed -n '/^LWL_VBODY(view1_body)/,/^}/p' "generated/$1/views.cu"; }
b2() { sed -n '/^LWL_VBODY(view2_body)/,/^}/p' "generated/$1/views.cu"; }
is "$(b1 lewel_b | grep -c lwl_v_solarize) $(b2 lewel_b | grep -c 'lwl_v_solarize(c, LWL_PH, 128)')" \
   "0 1" "lewel_b: solarize only in view 2, its threshold a literal"
is "$(b1 lewel_b | grep -B1 lwl_v_blur | grep -c fired) $(b2 lewel_b | grep -B1 lwl_v_blur |
      grep -c 'fired & LWL_VP_BLUR')" "0 1" "lewel_b: blur p 1 tests nothing, p 0.1 its coin"
is "$(b1 gray_v1 | grep -c 'LWL_STEP(lwl_v_gray') $(b1 gray_v1 | grep -c fired) \
$(b2 gray_v1 | grep -c lwl_v_gray)" "1 0 0" "gray_v1: grayscale always in view 1, never in view 2"
is "$(b1 fashion_mnist | grep -c 'lwl_v_out_f32(c, LWL_PH, 0.485f') $(b1 lewel_b |
      grep -c lwl_v_out_bf16)" "1 1" "the output's element type is train.precision's"
NVCC=${NVCC:-$(command -v nvcc || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })}
if [ -z "$NVCC" ]; then
    echo "# no nvcc: views.cu not compiled"
    finish
    exit
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(-O3 -std=c++17 --Werror all-warnings -Xcompiler -Wall,-Wextra,-Wshadow -D_GNU_SOURCE
       -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
       -Iruntime -Iruntime/cuda)

# Two at a time (the test machines have two cores); results in spec order.
specs=()
for d in generated/*/; do specs+=("$(basename "$d")"); done
for ((i = 0; i < ${#specs[@]}; i += 2)); do
    for s in "${specs[@]:i:2}"; do
        "$NVCC" "${flags[@]}" -c -o "$tmp/$s.o" "generated/$s/views.cu" >"$tmp/$s.log" 2>&1 &
    done
    wait
done
for s in "${specs[@]}"; do
    ok "generated/$s/views.cu compiles for sm_80 and sm_90 without warnings" \
        bash -c "test -s '$tmp/$s.o' && ! test -s '$tmp/$s.log' || { cat '$tmp/$s.log'; false; }"
done
if [ -f "${B:-build}/liblwl_cuda.a" ]; then
    ok "the GPU check of baseline links" tests/views/build.sh generated/baseline \
        "$tmp/gpu_check" --gpu
else
    echo "# ${B:-build}/liblwl_cuda.a not built: the GPU check's link is not tried"
fi
finish
