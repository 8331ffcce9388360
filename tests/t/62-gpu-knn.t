#!/usr/bin/env bash
# The kNN on the GPU, on the emulated device of tests/emu/ (no GPU here):
# 1. build/emu/test_knn: the top-k kernels with ties against a full sort, then gpu_ops.cuh's
#    knn_predict against the CPU's lwl_knn_predict on synthetic features and on real ones
#    (a CPU program's `features` of Fashion-MNIST after a few steps): memory and queries
#    apart or overlapping, k 1 and 20, majority and weighted votes, several cuts; the same
#    classes for every query (on real features a query may differ only on a near tie);
# 2. a program built against the emulated GPU runs its monitor and `knn` phase with
#    --device cuda: the GPU kNN's figures equal the CPU kNN's (LWL_GPU_KNN=0) on the same
#    features, for the pre-trained and the random-init backbone.
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh
root=$PWD
LWLC=$(readlink -f "$LWLC")
PY=/usr/bin/python3
B=${B:-build}
if [ ! -x "$root/$B/emu/test_knn" ] || [ ! -f "$root/$B/emu/lwl_gpu_emu.o" ]; then
    echo "1..0 # SKIP $B/emu/test_knn or lwl_gpu_emu.o not built (make unit)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

# ---- 1. real features: 40 images of each class, tiny's splits, 6 CPU steps
"$PY" "$root/tools/fmnist_to_imagefolder.py" --per-class 40 data40 >/dev/null || exit 1
"$LWLC" --target cpu -o cpu --emit-dir gen_cpu "$root/tests/specs/tiny.lwl" 2>/dev/null &&
    ./cpu --quiet --data data40 --out feats --threads 2 --steps 6 pretrain &&
    ./cpu --quiet --data data40 --out feats --threads 2 features train &&
    ./cpu --quiet --data data40 --out feats --threads 2 features val
ok "the CPU program writes the features of train and val" \
    test -s feats/features_train.safetensors -a -s feats/features_val.safetensors

# test_knn's TAP, numbered on with this script's (tap.sh's counters)
"$root/$B/emu/test_knn" feats/features_train.safetensors feats/features_val.safetensors \
    >knn.tap 2>&1
rc=$?
while IFS= read -r line; do
    case $line in
        "ok "*) _n=$((_n + 1)); echo "ok $_n - ${line#* - }" ;;
        "not ok "*) _n=$((_n + 1)); _fail=$((_fail + 1)); echo "not ok $_n - ${line#* - }" ;;
        "1.."*) ;;
        *) echo "# $line" ;;
    esac
done <knn.tap
ok "test_knn ran to its end (exit $rc)" test "$rc" -le 1

# ---- 2. the program's kNN on the emulated GPU: the monitor and the knn phase
"$PY" "$root/tools/fmnist_to_imagefolder.py" --per-class 6 data6 >/dev/null || exit 1
export LWLC_GPU_EMULATE=1
ok "lwlc builds a weighted k 5 program against the emulated GPU" \
    "$LWLC" -o emu --emit-dir gen_emu -D augment.size=16 -D train.epochs=1 \
    -D 'data.split=train 20% val 70% test 10%' -D 'eval.knn.memory=val 50%' \
    -D eval.knn.queries=val -D eval.knn.k=5 -D eval.knn.vote=weighted "$root/tests/specs/tiny.lwl"
./emu --data data6 --out gpu --device cuda --threads 2 pretrain knn >gpu.log 2>&1
mkdir -p cpu_knn && cp gpu/checkpoint.safetensors cpu_knn/
LWL_GPU_KNN=0 ./emu --data data6 --out cpu_knn --device cuda --threads 2 knn >cpu.log 2>&1
is "$(grep -c '^knn: on the GPU$' gpu.log) $(grep -c '^knn: on the CPU (LWL_GPU_KNN=0)$' cpu.log)" \
    "1 1" "each run says where its kNN runs"
figures() {   # the knn figures of results.json, both backbones
    "$PY" -c 'import json, sys
r = json.load(open(sys.argv[1]))
v = r["knn_top1"], r["knn_top5"], r["random_init"]["knn_top1"], r["random_init"]["knn_top5"]
print(" ".join("%.4f" % x for x in v))' \
        "$1/results.json"
}
gpu=$(figures gpu)
is "$gpu" "$(figures cpu_knn)" \
    "knn phase: the GPU kNN's top-1 / top-5 are the CPU kNN's (both backbones)"
is "$("$PY" -c 'import json, sys
m = [json.loads(l) for l in open(sys.argv[1]) if "knn_top1" in l]
print(len(m), "%.4f %.4f" % (m[-1]["knn_top1"], m[-1]["knn_top5"]))' gpu/metrics.jsonl)" \
    "1 $(cut -d' ' -f1-2 <<<"$gpu")" \
    "the monitor after epoch 1 (GPU) gives the knn phase's figures for the same weights"
finish
