#!/usr/bin/python3
"""Assembles the study's tables (I-IV of STUDY.md) or a table of any run directories from
their summary.json, as Markdown (stdout, and OUT/tables.md) and CSV (OUT/table_<id>.csv).
Stdlib only. Cells read "82.3 [77.6, 87.0]" (mean and Student-t interval of summary.json),
"57.5*" for a single run; a missing run is a row of "-" and a note, never a silent gap.

usage: lwl_tables.py [--study RUNS] [--out DIR] [RUN_DIR ...]
  --study RUNS  tables I-IV from RUNS/<spec>/summary.json (the default, RUNS = runs)
  RUN_DIR ...   one table, a row per directory in the order given
exit: 0 tables written, 1 a summary.json is unreadable or malformed, 2 usage."""
import argparse
import csv
import json
import os
import sys

LABELS = {
    "baseline": "All transformations (baseline)",
    "resized_crop": "Resized Crop",
    "color_jitter": "Color Jitter",
    "gaussian_blur": "Gaussian Blur",
    "solarize": "Solarize",
    "grayscale": "Grayscale",
    "horizontal_flip": "Horizontal Flip",
    "crop_gray": "Resized Crop + Grayscale",
    "crop_jitter": "Resized Crop + Color Jitter",
    "flip_gray": "Horizontal Flip + Grayscale",
    "baseline_half": "Baseline, non-zero probabilities halved",
    "gray_v1": "Grayscale: view 1 always, view 2 never",
}
SINGLES = ["baseline", "resized_crop", "color_jitter", "gaussian_blur", "solarize",
           "grayscale", "horizontal_flip"]
ALL3 = ["knn_top1", "linear_top1", "linear_top5"]
# (id, title, rows in STUDY.md's order, metrics)
STUDY = [
    ("I", "Table I: pre-training, kNN Acc@1", SINGLES, ["knn_top1"]),
    ("II", "Table II: linear classification", SINGLES, ["linear_top1", "linear_top5"]),
    ("III", "Table III: pairs of transformations", ["crop_gray", "crop_jitter", "flip_gray"],
     ALL3),
    ("IV", "Table IV: changed probabilities", ["baseline_half", "gray_v1"], ALL3),
]
TITLES = {"knn_top1": "kNN Acc@1", "knn_top5": "kNN Acc@5", "linear_top1": "linear Acc@1",
          "linear_top5": "linear Acc@5"}


class Bad(Exception):
    pass


def load(run_dir):
    """summary.json of run_dir, checked; None when there is none."""
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            s = json.load(f)
    except (OSError, ValueError) as e:
        raise Bad("%s: %s" % (path, e))
    if not isinstance(s, dict) or not isinstance(s.get("metrics"), dict):
        raise Bad("%s: no \"metrics\" object" % path)
    for name, m in s["metrics"].items():
        if not isinstance(m, dict) or not isinstance(m.get("values"), list):
            raise Bad("%s: metric %s has no \"values\" list" % (path, name))
    return s


def cell(m):
    """(text, mean, low, high, n) of a metric object, as summary.md prints it."""
    if m is None or not m.get("values"):
        return ("-", None, None, None, 0)
    n = len(m["values"])
    mean, low, high = m.get("mean"), m.get("low"), m.get("high")
    if mean is None:
        mean = sum(m["values"]) / n
    if n < 2 or low is None or high is None:
        return ("%.1f*" % mean if n == 1 else "%.1f" % mean, mean, None, None, n)
    return ("%.1f [%.1f, %.1f]" % (mean, low, high), mean, low, high, n)


def protocol_lines(summaries):
    """The protocol above a table: each distinct protocol text, repeats and confidence."""
    out, seen = [], set()
    for s in summaries:
        key = (s.get("protocol"), s.get("confidence"))
        if key in seen:
            continue
        seen.add(key)
        conf = s.get("confidence")
        text = (s.get("protocol") or "protocol not recorded").rstrip(".")
        out.append("Protocol: %s. Mean of the repeats and, where there are two or more, the "
                   "two-sided %s Student-t interval with n-1 degrees of freedom; accuracies "
                   "in percent." % (text, "%g%%" % (100 * conf) if conf else "?"))
    return out


def table(tid, title, rows, metrics, out_dir):
    """rows: (name, label, run_dir, summary or None). Returns the Markdown lines; writes
    out_dir/table_<tid>.csv when out_dir is set."""
    found = [s for _, _, _, s in rows if s is not None]
    md = ["## " + title, ""] + protocol_lines(found) + [""]
    md.append("| transformation | runs | " + " | ".join(TITLES.get(m, m) for m in metrics) + " |")
    md.append("|---|---|" + "---|" * len(metrics))
    recs, notes, single = [], [], False
    for name, label, run_dir, s in rows:
        cells = [cell(s["metrics"].get(m) if s else None) for m in metrics]
        runs = max([c[4] for c in cells] + [0])
        single = single or any(c[4] == 1 for c in cells)
        md.append("| %s | %s | %s |" % (label, runs if s else "-",
                                        " | ".join(c[0] for c in cells)))
        if s is None:
            notes.append("missing: %s" % os.path.join(run_dir, "summary.json"))
        else:
            lack = [m for m, c in zip(metrics, cells) if c[4] == 0]
            if lack:
                notes.append("%s has no %s" % (os.path.join(run_dir, "summary.json"),
                                               ", ".join(lack)))
        rec = {"experiment": name, "transformation": label, "runs": runs if s else ""}
        for m, c in zip(metrics, cells):
            for k, v in zip(("mean", "low", "high"), c[1:4]):
                rec["%s_%s" % (m, k)] = "" if v is None else repr(round(v, 6))
        recs.append(rec)
    if single:
        md += ["", "\\* one run: no interval."]
    md += [""] + ["- " + n for n in notes] + ([""] if notes else [])
    if out_dir:
        path = os.path.join(out_dir, "table_%s.csv" % tid)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(recs[0].keys()), lineterminator="\n")
            w.writeheader()
            w.writerows(recs)
    return md


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", metavar="RUNS", help="tables I-IV from RUNS/<spec>/")
    ap.add_argument("--out", metavar="DIR", help="write tables.md and table_*.csv here")
    ap.add_argument("--metrics", default=",".join(ALL3),
                    help="metrics of a table of run directories (default %(default)s)")
    ap.add_argument("runs", nargs="*", metavar="RUN_DIR")
    a = ap.parse_args()
    if a.study and a.runs:
        ap.error("give --study or run directories, not both")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    md = []
    try:
        if a.runs:
            rows = []
            for d in a.runs:
                s = load(d)
                name = (s or {}).get("experiment") or os.path.basename(os.path.normpath(d))
                rows.append((name, LABELS.get(name, name), d, s))
            md += table("runs", "Runs", rows, a.metrics.split(","), a.out)
        else:
            root = a.study or "runs"
            for tid, title, names, metrics in STUDY:
                rows = [(n, LABELS[n], os.path.join(root, n), load(os.path.join(root, n)))
                        for n in names]
                md += table(tid, title, rows, metrics, a.out)
    except (Bad, OSError) as e:
        print("lwl_tables: %s" % e, file=sys.stderr)
        return 1
    text = "\n".join(md).rstrip("\n") + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(os.path.join(a.out, "tables.md"), "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
