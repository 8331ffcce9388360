#!/usr/bin/env bash
# The loader and the scan phase through build/lwl-lewelb (the hand-written LEWEL_B pipeline):
# determinism over thread counts, rank coverage, drop_last, an unreadable file, scan.json.
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
cd "$here/tests/oracle" && exec "$PY" loader.py
