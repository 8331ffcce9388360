#!/usr/bin/env bash
# CPU primitives of liblwl: the C unit test (direct loops, determinism, errors, safetensors) and
# the PyTorch oracle (tests/oracle/nn_check.py drives $B/lwl-nntool: convolutions, max pooling,
# GEMM, safetensors both ways between C and st.py). Both print TAP; this script merges them.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
export B=${B:-build}
PY=${LWL_PYTHON:-/usr/bin/python3}
. "$here/tests/t/tap.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -x "$here/$B/tests/test_nn" ]; then
    ok "unit: test_nn (lwl_nn against direct loops; safetensors round trip and bad files)" \
        "$here/$B/tests/test_nn"
else
    echo "# SKIP $B/tests/test_nn not built (make unit)"
fi
if [ ! -x "$here/$B/lwl-nntool" ]; then
    echo "# SKIP $B/lwl-nntool not built (make)"
elif ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "# SKIP $PY lacks torch/numpy (make deps)"
else
    (cd "$here/tests/oracle" && "$PY" nn_check.py) >"$tmp/out" 2>&1
    rc=$?
    grep -v '^1\.\.' "$tmp/out" | sed 's/^\(\(not \)\?ok\) [0-9]* - /# \1 - /'
    ok "oracle: nn_check.py, $(grep -c '^ok' "$tmp/out") of $(grep -c '^\(not \)\?ok' \
        "$tmp/out") checks pass" test "$rc" -eq 0
fi
finish
