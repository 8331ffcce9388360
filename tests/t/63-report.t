#!/usr/bin/env bash
# lwlc --report: the launches per step it counts from the plan are the launches the GPU
# schedule makes. The emulated device (tests/emu/) counts every kernel, cuDNN convolution
# and cuBLAS GEMM the program asks for; a 3-step run less a 2-step run is one step, which
# must equal the report's "the step" line, for several variants. (fp16 is left out: whether
# a step overflows at its loss scale, and so skips the optimiser, depends on the data.)
# With nvcc, the report lists ptxas's registers for every kernel of net.cu and views.cu.
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh
root=$PWD
LWLC=$(readlink -f "$LWLC")
PY=${LWL_PYTHON:-/usr/bin/python3}
B=${B:-build}
if [ ! -f "$root/$B/emu/lwl_gpu_emu.o" ]; then
    echo "1..0 # SKIP $B/emu/lwl_gpu_emu.o not built (make)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" tools/fmnist_to_imagefolder.py --per-class 12 "$tmp/data" >/dev/null || exit 1
cd "$tmp" || exit 1

# counts FILE: "cudnn cublas kernels" of the emulator's count file
counts() { awk '{ print $4, $6, $2 }' "$1"; }

variants=(
    "base"
    "imagenet_bf16 -D model.stem=imagenet -D train.precision=bf16"
    "byol_ema_sgd -D model.head=byol -D model.target=ema -D train.optimizer=sgd"
)
for v in "${variants[@]}"; do
    set -- $v
    name=$1; shift
    LWLC_GPU_EMULATE=1 "$LWLC" -o "$name" --emit-dir "gen_$name" "$@" \
        "$root/tests/specs/tiny.lwl" 2>/dev/null
    for s in 2 3; do
        LWL_EMU_COUNTS="c_${name}_$s" ./"$name" --quiet --data data --out "r_${name}_$s" \
            --device cuda --threads 2 --steps "$s" pretrain >/dev/null 2>&1
    done
    got=$(paste <(counts "c_${name}_2") <(counts "c_${name}_3") 2>/dev/null |
          awk 'NF == 6 { print $4 - $1, $5 - $2, $6 - $3 }')
    "$LWLC" --report --emit-dir "rep_$name" "$@" "$root/tests/specs/tiny.lwl" \
        >"report_$name" 2>/dev/null
    want=$(awk '$1 == "the" && $2 == "step" { print $3, $4, $5 }' "report_$name")
    is "$got" "$want" "$name: one step's cuDNN calls, cuBLAS calls and kernels as reported"
done

# ptxas's side: every kernel net.cu and views.cu define has its line (needs nvcc).
if grep -q "no nvcc" report_base; then
    echo "# no nvcc: ptxas's part not checked"
else
    defined=$( (cat gen_base/net.cu gen_base/gpu_ops.cuh |
                sed -nE 's/^GK_KERNEL(_T)?\(([a-z0-9_]+),.*/\2_k/p'
                grep '__global__' rep_base/views.cu | grep -oE '[a-z0-9_]+\(lwl_vargs' |
                sed 's/(.*//') | sort -u)
    listed=$(grep -E '^  [a-z0-9_]+(<[^>]*>)? +[0-9]+ registers' report_base |
             awk '{ print $1 }' | sed 's/<.*//' | sort -u)
    is "$listed" "$defined" "base: ptxas's registers listed for every kernel of net.cu, views.cu"
fi
finish
