#!/usr/bin/env bash
# The examples of docs/language.md: `lwl` blocks check without errors and each
# `lwl-bad` block gives exactly the diagnostics of the `text` block after it.
# They run beside tests/golden/base.lwl; a fragment overrides it. Examples with
# the study's paths (root "../data/...") are checked from specs/.
cd "$(dirname "$0")/../.." || exit 1
exec python3 - "$(readlink -f "${LWLC:-${B:-build}/lwlc}")" <<'PY'
import os, re, shutil, subprocess, sys, tempfile

lwlc = sys.argv[1]
doc = open("docs/language.md", encoding="utf-8").read()
blocks = re.findall(r"```([a-z-]*)\n(.*?)```", doc, flags=re.S)


def check(text):
    """Runs lwlc --check on the example; returns (exit code, stderr)."""
    complete = re.search(r"^\s*use ", text, re.M) or re.search(r"root\s+\"", text)
    study = re.search(r'"\.\./data/', text)
    tmp = tempfile.mkdtemp(dir="specs" if study else None)
    try:
        shutil.copy("tests/golden/base.lwl", tmp)
        body = text
        if study:
            body = 'use "../lewel_b.lwl"\n' + text.replace('"imagenet100.txt"', '"../imagenet100.txt"')
        elif not complete:
            body = 'use "base.lwl"; ' + text
        with open(os.path.join(tmp, "case.lwl"), "w", encoding="utf-8") as f:
            f.write(body)
        r = subprocess.run([lwlc, "--check", "case.lwl"], cwd=tmp, capture_output=True,
                           text=True, timeout=30)
        return r.returncode, r.stderr
    finally:
        shutil.rmtree(tmp)


n = fails = 0
for i, (kind, text) in enumerate(blocks):
    if kind not in ("lwl", "lwl-bad"):
        continue
    rc, err = check(text)
    n += 1
    if kind == "lwl":
        good, what = rc == 0, "checks without errors"
    else:
        expected = blocks[i + 1][1] if i + 1 < len(blocks) and blocks[i + 1][0] == "text" else None
        good, what = err == expected, "gives the documented diagnostics"
    first = text.strip().splitlines()[0]
    print(("ok" if good else "not ok") + f" {n} - example '{first}' {what}")
    if not good:
        fails += 1
        print("\n".join("# " + l for l in err.splitlines()))
print(f"1..{n}")
sys.exit(1 if fails else 0)
PY
