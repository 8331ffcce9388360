#!/usr/bin/env bash
# The generated training program on real images (a small Fashion-MNIST tree):
# one step against the PyTorch reference for several specs (stems, backbones,
# heads, targets, optimisers, BN groups), exact resume, features against
# torchvision loading backbone.safetensors, the loss going down, and the scan
# and bench phases on a tree with broken files.
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh
root=$PWD
LWLC=$(readlink -f "$LWLC")
PY=${LWL_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
    echo "1..0 # SKIP no torch/torchvision for $PY"
    exit 0
fi
"$PY" tools/fmnist_to_imagefolder.py --per-class 12 "$tmp/data" >/dev/null || exit 1
cd "$tmp" || exit 1

# build NAME [-D ...]: the tiny spec with overrides, into ./NAME
build() {
    local name=$1; shift
    "$LWLC" --target cpu -o "$name" --emit-dir "gen/$name" "$@" "$root/tests/specs/tiny.lwl" \
        2>/dev/null
}

# One step of each variant against the reference.
variants=(
    "base"
    "groups2 -D train.gpus=2"
    "imagenet_stem -D model.stem=imagenet -D augment.size=64"
    "resnet50 -D model.backbone=resnet50"
    "byol -D model.head=byol"
    "ema_sgd -D model.target=ema -D train.optimizer=sgd"
)
for v in "${variants[@]}"; do
    set -- $v
    name=$1; shift
    ok "$name: lwlc builds it" build "$name" "$@"
    ok "$name: dump" ./"$name" --quiet --data data --out "run_$name" --threads 2 dump
    ok "$name: one step equals PyTorch's (loss, gradients, LARS/SGD, EMA)" \
        "$PY" "$root/tests/oracle/lewel_step.py" "run_$name/step_dump.safetensors"
done

# Resume (the pretrain phase alone: a finished protocol is skipped by --resume):
# 6 steps straight equal 3 steps, then 3 more after --resume, bit for bit.
./base --quiet --data data --out straight --threads 2 --steps 6 pretrain
./base --quiet --data data --out resumed --threads 2 --steps 3 pretrain
./base --quiet --data data --out resumed --threads 2 --steps 6 --resume pretrain
ok "resume: the losses of steps 4-6 are the same bits" \
    cmp <(cut -d, -f1-3 straight/metrics.jsonl) <(cut -d, -f1-3 resumed/metrics.jsonl)
ok "resume: the final checkpoints are the same bytes" \
    cmp straight/checkpoint.safetensors resumed/checkpoint.safetensors
# --steps 0 takes no step and writes the initial weights; resuming from them is the
# straight run again.
./base --quiet --data data --out zero --threads 2 --steps 0 pretrain
ok "--steps 0: the initial backbone written, no step taken" \
    test -s zero/backbone.safetensors -a ! -s zero/metrics.jsonl
./base --quiet --data data --out zero --threads 2 --steps 2 --resume pretrain
ok "--steps 0: resumed from it, steps 1-2 are the straight run's bits" \
    cmp <(cut -d, -f1-3 zero/metrics.jsonl) <(head -n 2 straight/metrics.jsonl | cut -d, -f1-3)
# A later step: from the 6-step checkpoint, --resume dump takes step 7. Its target is no
# longer the online network and its momentum buffers are not zero, so PyTorch checks that
# the target forward reads the target's own state and that the momentum carries over; a
# dump whose target is swapped for the online network fails.
cp -r straight later
ok "later step: --resume dump takes step 7" \
    ./base --quiet --data data --out later --threads 2 --resume dump
ok "later step: equals PyTorch's with the target and momentum before it" \
    "$PY" "$root/tests/oracle/lewel_step.py" later/step_dump.safetensors
"$PY" -c '
import sys
sys.path.insert(0, sys.argv[3])
import st
t, meta = st.read(sys.argv[1])
for n in list(t):
    if n.startswith("target_before."):
        t[n] = t[n[len("target_before."):]]
st.write(sys.argv[2], t, meta)' later/step_dump.safetensors swapped.st "$root/tests/oracle"
"$PY" "$root/tests/oracle/lewel_step.py" swapped.st >/dev/null 2>&1
is "$?" 1 "later step: a dump whose target was the online network fails the check"

printf 'name "other"\n' > other.lwl
"$LWLC" --target cpu -o other_prog --emit-dir gen/other -D train.lr=0.2 "$root/tests/specs/tiny.lwl" 2>/dev/null
err=$(./other_prog --quiet --data data --out resumed --threads 2 --steps 8 --resume pretrain 2>&1)
is "$?" 1 "resume with a different spec is refused"
is "$(grep -c 'different spec' <<<"$err")" 1 "... with a message saying so"

# Features of the program equal torchvision's on backbone.safetensors.
./base --quiet --data data --out straight --threads 2 features val
ok "features: torchvision loads backbone.safetensors (only fc missing) and agrees" \
    "$PY" "$root/tests/oracle/features_check.py" straight data

# A diverging run stops with a message and keeps the last good checkpoint.
build nan -D train.optimizer=sgd -D train.lr=1e30
cp -r straight nanrun
err=$(./nan --quiet --data data --out nanrun --threads 2 --steps 5 pretrain 2>&1)
is "$?" 1 "a NaN loss stops the run (exit 1)"
is "$(grep -c 'training diverged; the last good checkpoint is nanrun/checkpoint' <<<"$err")" 1 \
    "... saying so and naming the last good checkpoint"
ok "... which it leaves as it was" cmp straight/checkpoint.safetensors nanrun/checkpoint.safetensors

# Training lowers the loss: the mean of the last 5 of 40 steps is below the first 5's.
./base --quiet --data data --out long --threads 2 --epochs 8 --steps 40 pretrain
ok "40 steps lower the loss" "$PY" -c '
import json, sys
l = [json.loads(x) for x in open("long/metrics.jsonl")]
l = [x["loss"] for x in l if "loss" in x]
first, last = sum(l[:5]) / 5, sum(l[-5:]) / 5
print(f"first 5: {first:.4f}, last 5: {last:.4f}")
sys.exit(0 if len(l) == 40 and last < first else 1)'

# scan and bench on a tree with a file that is no image and a truncated JPEG.
mkdir -p scan_data/a scan_data/b
for i in 1 2 3 4 5; do
    cp "$root/examples/images/cat.jpg" "scan_data/a/c$i.jpg"
    cp "$root/examples/images/dog.jpg" "scan_data/b/d$i.jpg"
done
head -c 20000 "$root/examples/images/bird.jpg" > scan_data/a/truncated.jpg
echo "not an image" > scan_data/b/notes.jpg
log=$(./base --data scan_data --out scanrun --threads 2 scan 2>&1)
is "$?" 0 "scan: a tree with a broken and a truncated file scans (exit 0)"
ok "scan.json: counts per split, the broken file by name and reason, the truncated one warned" \
    "$PY" -c '
import json
s = json.load(open("scanrun/scan.json"))
sp = s["splits"]
assert s["classes"] == 2, s
assert sum(v["files"] for v in sp.values()) == 12, sp
assert all(v["readable"] + v["unreadable"] == v["files"] for v in sp.values()), sp
assert sum(v["unreadable"] for v in sp.values()) == 1, sp
[u] = s["unreadable"]
assert u["file"] == "b/notes.jpg" and "not a JPEG or PNG" in u["reason"], u
[w] = s["warnings"]
assert w["file"] == "a/truncated.jpg" and "Premature end" in w["reason"], w'
is "$(grep -c 'notes.jpg: unreadable' <<<"$log")" 1 "scan: the log names the broken file once"
./base --quiet --data scan_data --out benchrun --threads 2 bench >/dev/null 2>&1
ok "bench.json: data and step figures present and positive" "$PY" -c '
import json
b = json.load(open("benchrun/bench.json"))
assert b["data"]["threads"] == 2 and b["data"]["img_per_s"] > 0, b
for k in ("batch", "threads", "ms", "best_ms", "img_per_s", "peak_rss_mib"):
    assert b["step"][k] > 0, (k, b)
assert b["step"]["best_ms"] <= b["step"]["ms"], b'
finish
