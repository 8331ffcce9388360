#!/usr/bin/env bash
# The views phase of the hand-written LEWEL_B pipeline (build/lwl-lewelb), each view replayed from
# params.jsonl through torchvision/PIL; also the runtime's evaluation and linear-training views.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
export B=${B:-build}
PY=${LWL_PYTHON:-/usr/bin/python3}
if [ ! -x "$here/$B/lwl-lewelb" ]; then
    echo "1..0 # SKIP $B/lwl-lewelb not built (make)"
    exit 0
fi
if ! "$PY" -c 'import PIL, torchvision, numpy' 2>/dev/null; then
    echo "1..0 # SKIP $PY lacks PIL/torchvision/numpy (make deps)"
    exit 0
fi
cd "$here/tests/oracle" && exec "$PY" views.py
