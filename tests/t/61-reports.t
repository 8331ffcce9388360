#!/usr/bin/env bash
# The report tools on fake run directories: tools/lwl_tables.py (tables I-IV and a table of
# run directories, Markdown and CSV, missing runs and malformed files) and tools/plot_curves.py
# (gnuplot PNGs from metrics.jsonl of two repeats; checks the PNG signature).
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
PY=${LWL_PYTHON:-/usr/bin/python3}
. "$here/tests/t/tap.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
T="$PY $here/tools/lwl_tables.py"

mkdir -p "$tmp/runs/baseline" "$tmp/runs/grayscale" "$tmp/runs/crop_gray"
cat >"$tmp/runs/baseline/summary.json" <<'J'
{"experiment": "baseline", "repeats": 3, "confidence": 0.9, "protocol": "kNN k 20 majority",
 "metrics": {"knn_top1": {"values": [55, 59, 62.7], "mean": 58.9, "low": 49.4, "high": 68.3},
  "linear_top1": {"values": [80, 82, 84.9], "mean": 82.3, "low": 77.6, "high": 87.04},
  "linear_top5": {"values": [95, 95.3, 95.6], "mean": 95.3, "low": 93.5, "high": 97.2}}}
J
cat >"$tmp/runs/grayscale/summary.json" <<'J'
{"experiment": "grayscale", "repeats": 3, "confidence": 0.9, "protocol": "kNN k 20 majority",
 "metrics": {"knn_top1": {"values": [7.3, 7.5, 7.7], "mean": 7.5, "low": 7.3, "high": 7.7},
  "linear_top1": {"values": [16, 17, 17.7], "mean": 16.9, "low": 15.1, "high": 18.7},
  "linear_top5": {"values": [38.1, 38.1, 38.1], "mean": 38.1, "low": 38.1, "high": 38.1}}}
J
cat >"$tmp/runs/crop_gray/summary.json" <<'J'
{"experiment": "crop_gray", "repeats": 1, "confidence": 0.9, "protocol": "kNN k 20 majority",
 "metrics": {"knn_top1": {"values": [57.5], "mean": 57.5, "low": null, "high": null},
  "linear_top1": {"values": [80.3], "mean": 80.3, "low": null, "high": null},
  "linear_top5": {"values": [94.8], "mean": 94.8, "low": null, "high": null}}}
J

$T --study "$tmp/runs" --out "$tmp/tab" >"$tmp/study.md" 2>"$tmp/err"
is "$?" 0 "lwl_tables.py --study exits 0"
is "$(grep -c '^## Table' "$tmp/study.md")" 4 "four tables (I-IV)"
rows=$(sed -n '/^## Table II/,/^## Table III/p' "$tmp/study.md" | grep '^| ' \
      | cut -d'|' -f2 | tr -d ' ' | paste -sd,)
want="transformation,Alltransformations(baseline),ResizedCrop,ColorJitter,GaussianBlur"
is "$rows" "$want,Solarize,Grayscale,HorizontalFlip" \
   "Table II rows in STUDY.md's order (labels with spaces removed)"
grep -q '^| All transformations (baseline) | 3 | 82.3 \[77.6, 87.0\] | 95.3 \[93.5, 97.2\] |$' \
    "$tmp/study.md"
is "$?" 0 "Table II baseline row as the paper prints it"
grep -q '^| Grayscale | 3 | 7.5 \[7.3, 7.7\] |$' "$tmp/study.md"
is "$?" 0 "Table I grayscale row"
grep -q '^| Resized Crop + Grayscale | 1 | 57.5\* | 80.3\* | 94.8\* |$' "$tmp/study.md"
is "$?" 0 "Table III single run marked with *"
grep -q "^- missing: $tmp/runs/resized_crop/summary.json$" "$tmp/study.md"
is "$?" 0 "a missing run is named"
grep -q '^Protocol: kNN k 20 majority. Mean of the repeats .* 90% Student-t interval' \
    "$tmp/study.md"
is "$?" 0 "protocol line above the tables"
is "$(sed -n 2p "$tmp/tab/table_II.csv")" \
   "baseline,All transformations (baseline),3,82.3,77.6,87.04,95.3,93.5,97.2" "CSV row"
is "$(head -1 "$tmp/tab/table_I.csv")" \
   "experiment,transformation,runs,knn_top1_mean,knn_top1_low,knn_top1_high" "CSV header"
ok "tables.md equals stdout" cmp "$tmp/study.md" "$tmp/tab/tables.md"

$T "$tmp/runs/grayscale" "$tmp/runs/baseline" >"$tmp/runs.md"
is "$(grep '^| [AG]' "$tmp/runs.md" | cut -d'|' -f2 | paste -sd,)" \
   " Grayscale , All transformations (baseline) " "run directories keep their order"

mkdir -p "$tmp/runs/solarize"
echo '{"experiment": "x", "metrics": {"knn_top1": 3}}' >"$tmp/runs/solarize/summary.json"
$T --study "$tmp/runs" >/dev/null 2>"$tmp/err"
is "$?" 1 "a malformed summary.json is an error"
grep -q 'solarize/summary.json: metric knn_top1 has no "values" list' "$tmp/err"
is "$?" 0 "the error names the file and the problem"

# Curves: two repeats of metrics.jsonl.
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "# SKIP plot_curves.py: gnuplot missing (tools/deps.sh installs gnuplot-nox)"
else
    for r in 0 1; do
        mkdir -p "$tmp/run/run$r"
        "$PY" -c "
import json
for s in range(60):
    print(json.dumps({'step': s, 'epoch': s // 10, 'loss': 5.0 / (1 + s) + $r, 'lr': 0.01 * s}))
    if s % 10 == 9:
        print(json.dumps({'epoch': s // 10 + 1, 'knn_top1': 10.0 + s + $r}))
" >"$tmp/run/run$r/metrics.jsonl"
    done
    ok "plot_curves.py on two repeats" "$PY" "$here/tools/plot_curves.py" "$tmp/run" \
        --out "$tmp/png"
    for p in loss lr knn; do
        is "$(head -c 8 "$tmp/png/curves_$p.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" \
           "89504e470d0a1a0a" "curves_$p.png is a PNG"
    done
    echo 'not json' >>"$tmp/run/run1/metrics.jsonl"
    "$PY" "$here/tools/plot_curves.py" "$tmp/run" --out "$tmp/png" >/dev/null 2>"$tmp/err"
    is "$?" 1 "a bad metrics.jsonl line is an error"
    grep -q 'run1/metrics.jsonl:67: not JSON' "$tmp/err"
    is "$?" 0 "the error names file and line"
fi
finish
