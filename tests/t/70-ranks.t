#!/usr/bin/env bash
# Data-parallel training on CPU ranks: a `gpus 2` spec run as one process and as
# `mpirun -np 2` computes the same bits (norm batch and norm sync; the gradients summed in
# buckets during the backward), norm sync's statistics are the full batch's, a 2-rank run
# resumed in its warm-up and at an epoch's end reproduces the uninterrupted one, a rank
# that fails at start or is killed mid-run stops every rank, named, and torchrun's ranks
# are refused on the CPU. On the emulated GPU (tests/emu/), the GPU program's 2 ranks
# under mpirun follow its one process.
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

# Resume: 2 ranks for 6 steps (2 a epoch, the first epoch warm-up) equal 2 ranks for 1, then
# 3 more after --resume (past the warm-up's end and an epoch's), then 2 more from the
# checkpoint at the end of epoch 1.
"${MPI[@]}" ./r_batch --quiet --data data --out straight --threads 1 --steps 6 pretrain
"${MPI[@]}" ./r_batch --quiet --data data --out resumed --threads 1 --steps 1 pretrain
"${MPI[@]}" ./r_batch --quiet --data data --out resumed --threads 1 --steps 4 --resume pretrain
"${MPI[@]}" ./r_batch --quiet --data data --out resumed --threads 1 --steps 6 --resume pretrain
is "$("$PY" -c '
import json, sys
print(" ".join(str(json.loads(x)["epoch"]) for x in open(sys.argv[1])))' straight/metrics.jsonl)" \
    "0 0 1 1 2 2" "resume: the 6 steps span 3 epochs (2 steps each)"
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

# A rank killed mid-run (as the OOM killer would: SIGKILL, no last word) ends the run, and
# mpirun names it; no rank is left behind.
timeout 120 "${MPI[@]}" ./r_batch --quiet --data data --out killed --threads 1 --steps 500 \
    pretrain >killed.log 2>&1 &
watch=$!
for _ in $(seq 600); do
    [ "$(cat killed/metrics.jsonl 2>/dev/null | wc -l)" -ge 2 ] && break
    sleep 0.2
done
# the ranks are mpirun's children (timeout's grandchildren); rank 1 by its environment
rank1="" ranks=""
for p in $(pgrep -P "$(pgrep -P $watch)"); do
    ranks="$ranks $p"
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && rank1=$p
done
start=$(date +%s)
[ -n "$rank1" ] && kill -KILL "$rank1"
wait $watch
rc=$?
ok "a rank killed at step $(wc -l <killed/metrics.jsonl) ends the run (exit $rc, not 0 and not \
the timeout's 124)" test -n "$rank1" -a "$rc" -ne 0 -a "$rc" -ne 124
is "$(grep -c 'process rank 1 with PID .* exited on signal 9' killed.log)" 1 \
    "... mpirun names rank 1 and the signal"
# running: the ranks still there and not zombies (this machine's init may not reap them)
running() { ps -o stat= -p "$(echo $ranks | tr ' ' ,)" 2>/dev/null | grep -vc '^Z'; }
for _ in $(seq 25); do
    [ "$(running)" = 0 ] && break
    sleep 0.2
done
is "$(running)" 0 "... and no rank is left running"
echo "# the killed run ended $(( $(date +%s) - start )) s after the kill"

# torchrun's variables on the CPU: refused, saying what to use.
err=$(RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 timeout 60 ./r_batch --quiet --data data --out tr \
      --threads 1 --steps 1 pretrain 2>&1)
rc=$?
want="^rank 1: error: started as rank 1 of 2 by torchrun, on the CPU: CPU ranks meet through \
MPI; start them with mpirun -np 2 or srun"
is "$rc $(grep -c "$want" <<<"$err")" "1 1" \
    "torchrun's ranks on the CPU: refused (exit 1), pointing to mpirun and srun"

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
