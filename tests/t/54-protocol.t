#!/usr/bin/env bash
# The whole protocol of a generated program on a small Fashion-MNIST tree:
# pretrain with the kNN monitor, kNN and linear evaluation of the pre-trained
# and the random backbone, Grad-CAM, two repeats and their report; --resume
# skips finished repeats.
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh
root=$PWD
LWLC=$(readlink -f "$LWLC")
PY=${LWL_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" tools/fmnist_to_imagefolder.py --per-class 10 "$tmp/data" >/dev/null || exit 1
cd "$tmp" || exit 1
ok "lwlc builds the protocol" "$LWLC" --target cpu -o proto --emit-dir gen \
    -D eval.linear.epochs=3 -D 'eval.linear.milestones=[2]' -D eval.linear.batch=16 \
    -D 'eval.gradcam.images=["'"$root"'/examples/images/bird.jpg", "'"$root"'/examples/images/cat.jpg"]' \
    -D train.epochs=1 "$root/tests/specs/tiny.lwl"
out=$(./proto --data data --out run --threads 2 --repeat 2 2>&1)
is "$?" 0 "the default phases run (pretrain knn linear gradcam report), twice"
ok "each repeat has its results, checkpoints, linear classifier and heatmaps" bash -c '
    for k in 0 1; do
        for f in results.json metrics.jsonl checkpoint.safetensors backbone.safetensors \
                 linear.safetensors gradcam/bird.png gradcam/cat.png; do
            [ -s run/run$k/$f ] || { echo "missing run$k/$f"; exit 1; }
        done
    done'
ok "heatmaps are PNG images" bash -c 'head -c 8 run/run0/gradcam/bird.png | od -An -tx1 |
    grep -q "89 50 4e 47 0d 0a 1a 0a"'
ok "the kNN monitor wrote its line into metrics.jsonl" grep -q '"knn_top1"' run/run0/metrics.jsonl
ok "summary.json: every metric with 2 values, mean and interval; random_init beside" \
    "$PY" -c '
import json, math, sys
s = json.load(open("run/summary.json"))
assert s["repeats"] == 2 and s["confidence"] == 0.9, s
for group in (s["metrics"], s["random_init"]):
    for name in ("knn_top1", "knn_top5", "linear_top1", "linear_top5"):
        m = group[name]
        assert len(m["values"]) == 2, (name, m)
        assert abs(m["mean"] - sum(m["values"]) / 2) < 1e-9, m
        assert m["low"] <= m["mean"] <= m["high"], m
        assert all(0 <= v <= 100 for v in m["values"]), m
# the seeds differ, so the runs differ
a, b = (json.load(open("run/run%d/results.json" % k)) for k in (0, 1))
assert a["seed"] != b["seed"], (a, b)
print("ok")'
ok "summary.md gives the protocol and the paper's cells" grep -qE \
    '^\| pre-trained \| [0-9]+\.[0-9] \[-?[0-9.]+, [0-9.]+\]' run/summary.md
is "$(grep -c '^Protocol: LEWEL_B pre-training' run/summary.md)" 1 "... with the protocol above"
out=$(./proto --data data --out run --threads 2 --repeat 2 --resume 2>&1)
is "$(grep -c 'finished earlier; skipped' <<<"$out")" 2 "--resume skips the finished repeats"
ok "tables of the study from the run" "$PY" "$root/tools/lwl_tables.py" run
finish
