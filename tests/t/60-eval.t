#!/usr/bin/env bash
# The evaluation library (runtime/lwl_eval.c): the cmocka unit test build/tests/test_eval, with
# the oracle cases of tests/oracle/eval_ref.py (numpy kNN, torch SGD and Grad-CAM, scipy t
# intervals) when /usr/bin/python3 has numpy. The unit test prints TAP; this script passes it
# through, with the oracle's notes as comments.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
PY=${LWL_PYTHON:-/usr/bin/python3}
bin="$here/$B/tests/test_eval"
if [ ! -x "$bin" ]; then
    echo "1..0 # SKIP $B/tests/test_eval not built (make unit)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! "$PY" -c 'import numpy' 2>/dev/null; then
    echo "# SKIP oracle cases: $PY lacks numpy (make deps)"
elif ! "$PY" "$here/tests/oracle/eval_ref.py" "$tmp/oracle" >"$tmp/log" 2>&1; then
    sed 's/^/# /' "$tmp/log"
    echo "1..1"
    echo "not ok 1 - tests/oracle/eval_ref.py failed"
    exit 1
else
    sed 's/^\([^#]\)/# \1/' "$tmp/log"
    export LWL_EVAL_ORACLE="$tmp/oracle"
fi
"$bin"
