#!/usr/bin/env bash
# The checks that need a GPU, in one prepared run of under five minutes on one GPU (a
# second GPU adds the 2-GPU check). From the repository root of a checkout that carries
# build/gpukit (made where the project builds by tools/gpu_kit.sh); the machine needs only
# nvcc, a driver and PyTorch, whose pip packages bring cuDNN, cuBLAS and NCCL:
#   1. every kernel of the GPU step on the GPU against the same bodies on the host;
#   2. the GPU views against their emulation (tests/gpu/views.sh);
#   3. one step of the GPU network (fp32: real cuDNN and cuBLAS) against PyTorch in float64
#      (tests/oracle/lewel_step.py), ResNet-18 small stem and ResNet-50 imagenet stem;
#   4. 50 steps of bf16 on the GPU against 50 steps of fp32 on the CPU on a real image tree;
#   5. the baseline spec's step at batch 64: img/s, beside PyTorch's (bench/gpu/step_torch.py);
#   6. with two GPUs: 20 steps of gpus 2 as two ranks (one per GPU, started by the program)
#      against the same in one process on one GPU.
# Writes its log and results to $OUT (default /tmp/gpu_check); exits 1 when a check fails.
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
kit=${LWL_GPU_KIT:-$root/build/gpukit}
out=${OUT:-/tmp/gpu_check}
PY=${LWL_PYTHON:-python3}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
exec > >(tee "$out/gpu_check.log") 2>&1
start=$(date +%s)
failed=0
say() { echo "gpu: $(( $(date +%s) - start ))s: $*"; }
check() {   # check NAME command...: one result line, kept in $out/results.txt
    local name=$1; shift
    if "$@" >"$tmp/check.log" 2>&1; then
        echo "ok - $name" | tee -a "$out/results.txt"
    else
        echo "not ok - $name" | tee -a "$out/results.txt"
        tail -n 25 "$tmp/check.log" | sed 's/^/#   /'
        failed=1
    fi
    cp "$tmp/check.log" "$out/$(echo "$name" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-60).log"
}
[ -d "$kit/build" ] || { echo "gpu: no $kit (make it with tools/gpu_kit.sh and carry it)"; exit 1; }

# ---- the toolchain: nvcc, the GPU's architecture, cuDNN / cuBLAS / NCCL from the toolkit
# or from the Python packages, linked through unversioned names in $tmp/links
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CUDA_HOME=$(dirname "$(dirname "$NVCC")")
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '. ')
ngpu=$(nvidia-smi -L | grep -c '^GPU')
say "nvcc $("$NVCC" --version | tail -n 1); $ngpu GPU(s), sm_$arch: $(nvidia-smi -L | head -n 1)"
mkdir -p "$tmp/links"
incs=("-I$CUDA_HOME/include")
for lib in cudnn:libcudnn cublas:libcublas cublas:libcublasLt nccl:libnccl \
           cuda_runtime:libcudart; do
    pkg=${lib%%:*} so=${lib##*:}
    found=$(ls "$CUDA_HOME"/lib64/"$so".so* 2>/dev/null | head -n 1)
    dir=$("$PY" -c "import importlib
print(list(importlib.import_module('nvidia.$pkg').__path__)[0])" 2>/dev/null)
    [ -z "$found" ] && [ -n "$dir" ] && found=$(ls "$dir"/lib/"$so".so* 2>/dev/null | head -n 1)
    if [ -z "$found" ]; then
        echo "gpu: $so not found in $CUDA_HOME or the nvidia.$pkg package"
        exit 1
    fi
    ln -sf "$found" "$tmp/links/$so.so"
    [ -n "$dir" ] && [ -d "$dir/include" ] && incs+=("-I$dir/include")
    libdirs="${libdirs:-}:$(dirname "$found")"
done
export CPATH=$kit/include LIBRARY_PATH=$kit/lib
export LD_LIBRARY_PATH="$kit/lib$libdirs:${LD_LIBRARY_PATH:-}"
export LWL_HOME=$root CUDA_ARCH=$arch LWL_NVCC=$NVCC
export LWL_NVCC_FLAGS="-O3 -std=c++17 --Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror \
-D_GNU_SOURCE ${incs[*]}"
export LWL_CUDA_LIBS="-L$tmp/links -Wl,-rpath,${libdirs#:} -lcudnn -lcublasLt -lcublas -lnccl \
-lcudart"
export LWL_RUNTIME_LIBS="-L$kit/lib -Wl,-rpath,$kit/lib -ljpeg -lpng -lpthread -lm -ldnnl -lgomp \
-lcjson -lgsl -lgslcblas"
LWLC=$kit/build/lwlc

# liblwl_cuda again, by this nvcc for this GPU, beside the carried liblwl
gencode="-gencode arch=compute_$arch,code=sm_$arch"
export LWL_BUILD=$tmp/build
mkdir -p "$LWL_BUILD/cuda"
ln -s "$kit/build/liblwl.a" "$LWL_BUILD/liblwl.a"
for f in runtime/cuda/*.cu; do
    "$NVCC" $LWL_NVCC_FLAGS -Xcompiler -Wno-unused-function $gencode -Iruntime -Iruntime/cuda \
        -c "$f" -o "$LWL_BUILD/cuda/$(basename "$f" .cu).o" || exit 1
done
ar rcs "$LWL_BUILD/liblwl_cuda.a" "$LWL_BUILD"/cuda/*.o
say "built liblwl_cuda for sm_$arch"

# ---- 1. the kernels
for act in fp32 bf16 fp16; do
    def=$([ $act = bf16 ] && echo -DLWL_ACT_BF16 || { [ $act = fp16 ] && echo -DLWL_ACT_F16; })
    "$NVCC" $LWL_NVCC_FLAGS -Xcompiler -Wno-unused-function $gencode $def -Icompiler/tmpl \
        -Iruntime -Iruntime/cuda tests/gpu/kernels.cu "$LWL_BUILD/liblwl_cuda.a" $LWL_CUDA_LIBS \
        "$LWL_BUILD/liblwl.a" $LWL_RUNTIME_LIBS -o "$tmp/kernels_$act" &&
    check "kernels ($act activations): the GPU's results equal the host's" "$tmp/kernels_$act"
done
say "kernels done"

# ---- 2. the GPU views
check "views: the GPU's views equal their emulation, bit for bit" \
    env B="$LWL_BUILD" LWLC="$LWLC" LWL_PYTHON="$PY" \
    CUDA_ARCH_FLAGS="-gencode arch=compute_$arch,code=sm_$arch" tests/gpu/views.sh
say "views done"

# ---- 3. one step against PyTorch
data=$kit/data/fmnist
cd "$tmp" || exit 1
for v in "r18 -D train.precision=fp32" \
         "r50 -D train.precision=fp32 -D model.backbone=resnet50 -D model.stem=imagenet \
-D augment.size=64 -D train.batch=16"; do
    set -- $v
    name=$1; shift
    "$LWLC" --target cuda -o "step_$name" --emit-dir "gen_$name" "$@" "$root/tests/specs/tiny.lwl" \
        2>/dev/null &&
    ./"step_$name" --quiet --data "$data" --out "dump_$name" --device cuda dump &&
    check "step $name (fp32, cuDNN, cuBLAS): equals PyTorch's float64 step" \
        "$PY" "$root/tests/oracle/lewel_step.py" "dump_$name/step_dump.safetensors"
done
say "step checks done"

# ---- 4. 50 steps, bf16 on the GPU against fp32 on the CPU
"$LWLC" --target cuda -o curve --emit-dir gen_curve -D train.precision=bf16 -D train.batch=32 \
    -D train.epochs=13 "$root/tests/specs/tiny.lwl" 2>/dev/null
./curve --quiet --data "$data" --out curve_gpu --device cuda --steps 50 pretrain
./curve --quiet --data "$data" --out curve_cpu --device cpu --steps 50 pretrain
check "50 steps: bf16 on the GPU follows fp32 on the CPU (loss within bf16 tolerance)" "$PY" -c '
import json, sys
def losses(p):
    return [json.loads(l)["loss"] for l in open(p) if "\"loss\"" in l]
g, c = losses(sys.argv[1]), losses(sys.argv[2])
print("gpu", " ".join(f"{x:.4f}" for x in g))
print("cpu", " ".join(f"{x:.4f}" for x in c))
early = max(abs(a - b) / b for a, b in zip(g[:5], c[:5]))
windows = [abs(sum(g[i:i + 10]) - sum(c[i:i + 10])) / sum(c[i:i + 10]) for i in range(0, 50, 10)]
print(f"first 5 steps: largest relative difference {early:.4f}; 10-step means:",
      " ".join(f"{w:.4f}" for w in windows))
sys.exit(0 if len(g) == len(c) == 50 and early < 0.02 and max(windows) < 0.05 else 1)' \
    curve_gpu/metrics.jsonl curve_cpu/metrics.jsonl
say "curves done"

# ---- 5. throughput: the baseline spec's step at batch 64 on one GPU, and PyTorch's
mkdir -p photos
for c in 0 1 2 3 4 5 6 7 8 9; do
    mkdir -p "photos/c$c"
    for k in $(seq 0 19); do
        for f in "$root"/examples/images/*.jpg; do
            ln -sf "$f" "photos/c$c/$(basename "$f" .jpg)_$k.jpg"
        done
    done
done
"$LWLC" --target cuda -o base64 --emit-dir gen_base64 -D train.batch=64 -D train.gpus=1 \
    "$root/specs/baseline.lwl" 2>/dev/null &&
./base64 --data photos --out bench_ours --device cuda bench | tee "$out/bench_ours.txt"
PYTHONUNBUFFERED=1 "$PY" "$root/bench/gpu/step_torch.py" --batch 64 --steps 20 |
    tee "$out/bench_torch.txt"
"$PY" - "$out" <<'PY' | tee -a "$out/results.txt"
import json, re, sys
out = sys.argv[1]
ours = json.load(open("bench_ours/bench.json"))["step"]["img_per_s"]
m = re.search(r"img/s ([0-9.]+)", open(f"{out}/bench_torch.txt").read())
torch = float(m.group(1)) if m else float("nan")
print(f"# throughput at batch 64 on one GPU: lwlc {ours:.0f} img/s, PyTorch {torch:.0f} img/s, "
      f"ratio {ours / torch:.2f}x (goals: 2000 img/s, 1.5x)")
PY
say "throughput done"

# ---- 6. two GPUs: gpus 2 on two ranks against the same on one GPU, and the speed-up of two
# GPUs over one at the same global batch (a figure, goal >= 1.9x; not a check)
if [ "$ngpu" -ge 2 ]; then
    "$LWLC" --target cuda -o two --emit-dir gen_two -D train.gpus=2 -D train.batch=16 \
        "$root/tests/specs/tiny.lwl" 2>/dev/null
    LWL_SPAWN=0 ./two --quiet --data "$data" --out two_one --device cuda --steps 20 pretrain
    ./two --quiet --data "$data" --out two_two --device cuda --steps 20 pretrain
    check "2 GPUs: 20 steps of gpus 2 on two GPUs follow the same on one" "$PY" -c '
import json, sys
l = [[json.loads(x)["loss"] for x in open(p) if "\"loss\"" in x] for p in sys.argv[1:]]
worst = max(abs(a - b) / abs(a) for a, b in zip(*l))
print(f"largest relative difference {worst:.3g} over {len(l[0])} steps")
sys.exit(0 if len(l[0]) == len(l[1]) == 20 and worst < 1e-2 else 1)' \
        two_one/metrics.jsonl two_two/metrics.jsonl
    # Scaling at the same global batch: the baseline spec at batch 128 (64 images per GPU) as
    # one process on one GPU and as two ranks, 30 steps each on 1800 photos; the median img/s
    # of steps 6..30 (the step line's: the step and its data wait) of each, and their ratio.
    mkdir -p scale_photos
    for c in 0 1 2 3 4 5 6 7 8 9; do
        mkdir -p "scale_photos/c$c"
        for k in $(seq 0 59); do
            for f in "$root"/examples/images/*.jpg; do
                ln -sf "$f" "scale_photos/c$c/$(basename "$f" .jpg)_$k.jpg"
            done
        done
    done
    "$LWLC" --target cuda -o scale --emit-dir gen_scale -D train.batch=128 -D train.gpus=2 \
        -D eval.knn.every=0 "$root/specs/baseline.lwl" 2>/dev/null &&
    LWL_SPAWN=0 ./scale --quiet --data scale_photos --out scale_one --device cuda --steps 30 \
        pretrain &&
    ./scale --quiet --data scale_photos --out scale_two --device cuda --steps 30 pretrain
    "$PY" - scale_one/metrics.jsonl scale_two/metrics.jsonl <<'PY' | tee -a "$out/results.txt"
import json, statistics, sys
def ips(path):
    try:
        steps = [json.loads(x)["img_per_s"] for x in open(path) if '"img_per_s"' in x]
    except OSError:
        steps = []
    return (statistics.median(steps[5:30]) if len(steps) > 5 else float("nan")), len(steps)
(one, n1), (two, n2) = ips(sys.argv[1]), ips(sys.argv[2])
print(f"# scaling at global batch 128 (baseline, bf16): 1 GPU {one:.0f} img/s ({n1} steps), "
      f"2 GPUs {two:.0f} img/s ({n2} steps): {two / one:.2f}x (goal >= 1.9x)")
PY
fi
say "done; $(grep -c '^ok' "$out/results.txt") ok, $(grep -c '^not ok' "$out/results.txt") not ok"
exit $failed
