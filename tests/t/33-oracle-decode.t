#!/usr/bin/env bash
# Oracle test (every decoder case vs Pillow, unreadable and truncated files, region decodes):
# tests/oracle/decode.py drives $B/lwl-imgtool and compares with Debian's python3-torchvision /
# python3-pil (the system python, not a virtual environment's).
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
export B=${B:-build}
PY=${LWL_PYTHON:-/usr/bin/python3}
if [ ! -x "$here/$B/lwl-imgtool" ]; then
    echo "1..0 # SKIP $B/lwl-imgtool not built (make)"
    exit 0
fi
if ! "$PY" -c 'import PIL, torchvision, numpy' 2>/dev/null; then
    echo "1..0 # SKIP $PY lacks PIL/torchvision/numpy (make deps)"
    exit 0
fi
cd "$here/tests/oracle" && exec "$PY" decode.py
