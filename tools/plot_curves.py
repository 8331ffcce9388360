#!/usr/bin/python3
"""Training curves of a run as PNG with gnuplot (pngcairo): loss and lr against the step, kNN
Acc@1 against the epoch, from RUN/metrics.jsonl, or from RUN/run<k>/metrics.jsonl for each
repeat (one line per repeat). Stdlib only; gnuplot draws, this script only extracts columns.

usage: plot_curves.py RUN_DIR [--out DIR]   (DIR defaults to RUN_DIR)
writes DIR/curves_loss.png, DIR/curves_lr.png, DIR/curves_knn.png (each when its data exist)
exit: 0 written, 1 no data, a bad line, or gnuplot missing or failing, 2 usage."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# (file stem, x key, y key, x label, y label, title)
PLOTS = [
    ("loss", "step", "loss", "step", "loss", "pre-training loss"),
    ("lr", "step", "lr", "step", "learning rate", "learning rate"),
    ("knn", "epoch", "knn_top1", "epoch", "kNN Acc@1 (%)", "kNN monitor"),
]


class Bad(Exception):
    pass


def sources(run_dir):
    """[(label, metrics.jsonl path)]: the run's own file, or one per run<k>/ in k order."""
    own = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(own):
        return [(os.path.basename(os.path.normpath(run_dir)), own)]
    reps = []
    for d in os.listdir(run_dir) if os.path.isdir(run_dir) else []:
        m = re.fullmatch(r"run(\d+)", d)
        if m and os.path.exists(os.path.join(run_dir, d, "metrics.jsonl")):
            reps.append((int(m.group(1)), d))
    return [(d, os.path.join(run_dir, d, "metrics.jsonl")) for _, d in sorted(reps)]


def columns(path, xkey, ykey):
    """(x, y) pairs of the lines of path that carry both keys as numbers."""
    pts = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                o = json.loads(line)
            except ValueError as e:
                raise Bad("%s:%d: not JSON: %s" % (path, no, e))
            if not isinstance(o, dict):
                continue
            x, y = o.get(xkey), o.get(ykey)
            if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                pts.append((x, y))
    return pts


def gp_str(s):
    """s as a gnuplot single-quoted string."""
    return "'" + s.replace("'", "''") + "'"


def plot(tmp, out, stem, series, xlabel, ylabel, title):
    """Writes out/curves_<stem>.png from series [(label, points)] through gnuplot."""
    cmds = ["set terminal pngcairo size 900,540 noenhanced",
            "set output " + gp_str(os.path.join(out, "curves_%s.png" % stem)),
            "set title " + gp_str(title), "set xlabel " + gp_str(xlabel),
            "set ylabel " + gp_str(ylabel), "set grid", "set key top right"]
    if stem == "lr":
        cmds.append("set format y '%.2g'")
    plots = []
    for i, (label, pts) in enumerate(series):
        data = os.path.join(tmp, "%s_%d.dat" % (stem, i))
        with open(data, "w") as f:
            f.writelines("%r %r\n" % p for p in pts)
        style = "linespoints pt 7 ps 0.6" if stem == "knn" else "lines"
        plots.append("%s using 1:2 with %s title %s" % (gp_str(data), style, gp_str(label)))
    cmds.append("plot " + ", ".join(plots))
    r = subprocess.run(["gnuplot"], input="\n".join(cmds) + "\n", text=True,
                       capture_output=True)
    if r.returncode != 0:
        raise Bad("gnuplot failed on %s: %s" % (stem, r.stderr.strip()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--out", help="directory of the PNGs (default: RUN_DIR)")
    a = ap.parse_args()
    out = a.out or a.run_dir
    if shutil.which("gnuplot") is None:
        print("plot_curves: gnuplot not found (tools/deps.sh installs gnuplot-nox)",
              file=sys.stderr)
        return 1
    src = sources(a.run_dir)
    if not src:
        print("plot_curves: no metrics.jsonl in %s or its run<k>/" % a.run_dir, file=sys.stderr)
        return 1
    os.makedirs(out, exist_ok=True)
    written = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for stem, xk, yk, xl, yl, title in PLOTS:
                series = [(lab, columns(p, xk, yk)) for lab, p in src]
                series = [(lab, pts) for lab, pts in series if pts]
                if not series:
                    print("plot_curves: no %s/%s points: %s skipped" % (xk, yk, stem))
                    continue
                plot(tmp, out, stem, series, xl, yl, title)
                written.append(os.path.join(out, "curves_%s.png" % stem))
    except (Bad, OSError) as e:
        print("plot_curves: %s" % e, file=sys.stderr)
        return 1
    if not written:
        print("plot_curves: nothing to plot in %s" % a.run_dir, file=sys.stderr)
        return 1
    for w in written:
        print("plot_curves: wrote %s" % w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
