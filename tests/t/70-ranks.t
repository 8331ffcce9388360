#!/usr/bin/env bash
# Data-parallel training on CPU ranks: a `gpus 2` spec run as one process and as
# `mpirun -np 2` computes the same bits (norm batch and norm sync), norm sync's
# statistics are the full batch's, a resumed 2-rank run reproduces the
# uninterrupted one, and a failing rank stops every rank, named. On the emulated GPU
# (tests/emu/), the GPU program's 2 ranks under mpirun follow its one process.
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh
root=$PWD
LWLC=$(readlink -f "$LWLC")
PY=${LWL_PYTHON:-/usr/bin/python3}
if ! command -v mpirun >/dev/null 2>&1; then
    echo "1..0 # SKIP no mpirun (tools/deps.sh installs openmpi-bin)"
    exit 0
fi
if ! "$PY" -c 'import numpy, PIL' 2>/dev/null; then
    echo "1..0 # SKIP no numpy/Pillow for $PY"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" tools/fmnist_to_imagefolder.py --per-class 12 "$tmp/data" >/dev/null || exit 1
cd "$tmp" || exit 1
# mpirun refuses root unless told; a rank that waits polls without spinning.
MPI=(mpirun --allow-run-as-root --oversubscribe -np 2)
export OMPI_MCA_mpi_yield_when_idle=1

# losses FILE: the loss of every step line of a metrics.jsonl, one a line.
losses() { "$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if "loss" in j:
        print(repr(j["loss"]))' "$1"; }

# within A B: the losses of two runs agree within 1e-5 relative, step by step.
within() { "$PY" -c '
import sys
a = [float(x) for x in open(sys.argv[1])]
b = [float(x) for x in open(sys.argv[2])]
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b)) if a else 1
print(f"{len(a)} and {len(b)} steps, largest relative difference {worst:.3g}")
sys.exit(0 if len(a) == len(b) == 20 and worst <= 1e-5 else 1)' "$1" "$2"; }

for norm in batch sync; do
    ok "norm $norm: lwlc builds the gpus 2 spec" \
        "$LWLC" --target cpu -o "r_$norm" --emit-dir "gen_$norm" -D "model.norm=$norm" \
        "$root/tests/specs/ranks.lwl"
    # the same threads per chunk: oneDNN's sums depend on the thread count
    ./"r_$norm" --quiet --data data --out "one_$norm" --threads 1 --steps 20 pretrain
    "${MPI[@]}" ./"r_$norm" --quiet --data data --out "two_$norm" --threads 1 --steps 20 \
        pretrain
    losses "one_$norm/metrics.jsonl" > "one_$norm.loss"
    losses "two_$norm/metrics.jsonl" > "two_$norm.loss"
    ok "norm $norm: 20 steps of 1 process and of 2 ranks: losses within 1e-5" \
        within "one_$norm.loss" "two_$norm.loss"
    # The chunks of one process are summed as the ranks' sum adds them: the same bits.
    ok "norm $norm: ... and the same bits, step by step" cmp "one_$norm.loss" "two_$norm.loss"
    ok "norm $norm: the checkpoints (weights, BN statistics of every group, target, LARS) are \
the same bytes" cmp "one_$norm/checkpoint.safetensors" "two_$norm/checkpoint.safetensors"
done

# norm sync over 2 ranks normalises with the whole batch: after one step its weights and
# running statistics are those of one GPU holding the whole batch (gpus 1), up to rounding.
"$LWLC" --target cpu -o full --emit-dir gen_full -D train.gpus=1 "$root/tests/specs/ranks.lwl" 2>/dev/null
./full --quiet --data data --out full1 --threads 1 --steps 1 pretrain
"${MPI[@]}" ./r_sync --quiet --data data --out sync1 --threads 1 --steps 1 pretrain
ok "norm sync: BN statistics (and weights) after a step equal the full batch's within 1e-5" \
    "$PY" "$root/tests/oracle/ckpt_close.py" full1/checkpoint.safetensors \
    sync1/checkpoint.safetensors 1e-5
"${MPI[@]}" ./r_batch --quiet --data data --out batch1 --threads 1 --steps 1 pretrain
ok "norm batch: ... which per-rank statistics do not give (the check can fail)" \
    bash -c "! '$PY' '$root/tests/oracle/ckpt_close.py' full1/checkpoint.safetensors \
    batch1/checkpoint.safetensors 1e-5 state.params"

# Resume: 2 ranks for 6 steps equal 2 ranks for 3, then 3 more after --resume.
"${MPI[@]}" ./r_batch --quiet --data data --out straight --threads 1 --steps 6 pretrain
"${MPI[@]}" ./r_batch --quiet --data data --out resumed --threads 1 --steps 3 pretrain
"${MPI[@]}" ./r_batch --quiet --data data --out resumed --threads 1 --steps 6 --resume pretrain
ok "resume of a 2-rank run: the losses are the same bits" \
    cmp <(losses straight/metrics.jsonl) <(losses resumed/metrics.jsonl)
ok "... and the final checkpoints the same bytes" \
    cmp straight/checkpoint.safetensors resumed/checkpoint.safetensors

# One rank failing (here rank 1 cannot read its data) stops both, naming it.
start=$(date +%s)
err=$(timeout 120 mpirun --allow-run-as-root --oversubscribe -np 1 ./r_batch --quiet \
      --data data --out fail --threads 1 --steps 4 pretrain : -np 1 ./r_batch --quiet \
      --data nowhere --out fail --threads 1 --steps 4 pretrain 2>&1)
rc=$?
ok "a failing rank ends the run (exit $rc, not 0 and not the timeout's 124)" \
    test "$rc" -ne 0 -a "$rc" -ne 124
is "$(grep -c '^rank 1: error: data: ' <<<"$err")" 1 "... with an error naming rank 1"
is "$(grep -c 'rank 1 of 2 failed' <<<"$err")" 1 "... which says it stops every rank"
echo "# the failing run took $(( $(date +%s) - start )) s"

# Three ranks cannot share two GPUs' batch.
err=$(timeout 60 mpirun --allow-run-as-root --oversubscribe -np 3 ./r_batch --quiet \
      --data data --out three --threads 1 --steps 1 pretrain 2>&1)
is "$(grep -c 'train.gpus 2 is not divisible by them; start 2 ranks' <<<"$err")" 3 \
    "3 ranks of a gpus 2 spec: each says why, and start 2 ranks"

# The GPU program on the emulated GPU (one per rank, NCCL's collectives through MPI): its 2
# ranks follow its one process within float rounding (the emulated convolutions sum each
# rank's images in double, then the ranks' float sums add), with both norms. 16 pixels keep
# the emulation short.
if [ -f "$root/${B:-build}/emu/lwl_gpu_emu.o" ]; then
    for norm in batch sync; do
        LWLC_GPU_EMULATE=1 "$LWLC" -o "g_$norm" --emit-dir "geng_$norm" -D train.gpus=2 \
            -D augment.size=16 -D "model.norm=$norm" "$root/tests/specs/tiny.lwl" 2>/dev/null
        ./"g_$norm" --quiet --data data --out "gone_$norm" --device cuda --threads 1 --steps 2 \
            pretrain
        "${MPI[@]}" ./"g_$norm" --quiet --data data --out "gtwo_$norm" --device cuda \
            --threads 1 --steps 2 pretrain
        ok "emulated GPU, norm $norm: 2 steps of 2 ranks against 1 process: losses within 1e-6" \
            "$PY" -c '
import json, sys
l = [[json.loads(x)["loss"] for x in open(p)] for p in sys.argv[1:]]
worst = max(abs(a - b) / abs(a) for a, b in zip(*l)) if l[0] else 1
print(f"largest relative difference {worst:.3g}")
sys.exit(0 if len(l[0]) == len(l[1]) == 2 and worst <= 1e-6 else 1)' \
            "gone_$norm/metrics.jsonl" "gtwo_$norm/metrics.jsonl"
        ok "... and the checkpoints within 1e-5 (weights, statistics, target, momentum)" \
            "$PY" "$root/tests/oracle/ckpt_close.py" "gone_$norm/checkpoint.safetensors" \
            "gtwo_$norm/checkpoint.safetensors" 1e-5
    done
else
    echo "# no ${B:-build}/emu/lwl_gpu_emu.o: the emulated GPU's ranks not checked"
fi
finish
