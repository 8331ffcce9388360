#!/usr/bin/env python3
"""Golden tests of lwlc's diagnostics, as TAP.

Each tests/golden/cases/*.case file holds one or more cases:

    === name of the case
    args: --check                 (optional; the spec file name is appended)
    exit: 1
    --- spec
    <the .lwl text, written to NAME.lwl beside tests/golden/base.lwl>
    --- stderr
    <the exact diagnostics expected>

`--- stdout` may follow as well. Bytes that are not UTF-8 are kept as they are (a
case may hold a raw 0xe9 to test the lexer). The spec is written as case.lwl in a scratch
directory that also holds base.lwl (a valid complete spec to `use`), and lwlc
runs there, so file names in diagnostics are stable.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_cases(path):
    cases, cur, section = [], None, None
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            if line.startswith("=== "):
                cur = {"name": line[4:].strip(), "args": "--check", "exit": "1",
                       "spec": "", "stderr": "", "stdout": None, "files": {}}
                cases.append(cur)
                section = None
            elif cur is None:
                continue
            elif line.startswith("--- "):
                section = line[4:].strip()
                if section == "stdout":
                    cur["stdout"] = ""
                elif section.startswith("file "):
                    cur["files"][section[5:]] = ""
            elif section is None and ":" in line:
                key, val = line.split(":", 1)
                cur[key.strip()] = val.strip()
            elif section is not None:
                if section.startswith("file "):
                    cur["files"][section[5:]] += line
                else:
                    cur[section] += line
    # A blank line may separate cases: it belongs to none of them.
    for c in cases:
        for key in ("spec", "stderr", "stdout"):
            if c[key]:
                c[key] = c[key].rstrip("\n") + "\n" if c[key].strip("\n") else ""
        for name in c["files"]:
            c["files"][name] = c["files"][name].rstrip("\n") + "\n"
    return cases


def main():
    lwlc = os.path.abspath(os.environ.get("LWLC", "build/lwlc"))
    files = sorted(f for f in os.listdir(os.path.join(HERE, "cases")) if f.endswith(".case"))
    cases = []
    for f in files:
        cases += [(f, c) for c in parse_cases(os.path.join(HERE, "cases", f))]
    print(f"1..{len(cases)}")
    failed = 0
    for i, (f, c) in enumerate(cases, 1):
        tmp = tempfile.mkdtemp(prefix="lwlc-golden-")
        try:
            shutil.copy(os.path.join(HERE, "base.lwl"), tmp)
            for name, text in c["files"].items():
                os.makedirs(os.path.dirname(os.path.join(tmp, name)) or tmp, exist_ok=True)
                with open(os.path.join(tmp, name), "w", encoding="utf-8",
                          errors="surrogateescape") as out:
                    out.write(text)
            with open(os.path.join(tmp, "case.lwl"), "w", encoding="utf-8",
                      errors="surrogateescape") as out:
                out.write(c["spec"])
            args = [lwlc] + c["args"].split() + ["case.lwl"]
            r = subprocess.run(args, cwd=tmp, capture_output=True, encoding="utf-8",
                               errors="surrogateescape", timeout=30)
            problems = []
            if str(r.returncode) != c["exit"]:
                problems.append(f"exit {r.returncode}, expected {c['exit']}")
            if r.stderr != c["stderr"]:
                problems.append("stderr differs:\n--- got\n" + r.stderr +
                                "--- expected\n" + c["stderr"])
            if c["stdout"] is not None and r.stdout != c["stdout"]:
                problems.append("stdout differs:\n--- got\n" + r.stdout +
                                "--- expected\n" + c["stdout"])
        finally:
            shutil.rmtree(tmp)
        if problems:
            failed += 1
            print(f"not ok {i} - {f}: {c['name']}")
            for p in problems:
                for line in p.splitlines():
                    print("# " + line)
        else:
            print(f"ok {i} - {f}: {c['name']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
