#!/usr/bin/env bash
# C unit test of the GPU views' per-image work emulated on the CPU (every op against its CPU
# loop, the layout, the casts): runs build/tests/test_views, which prints TAP.
B=${B:-build}
bin="$B/tests/test_views"
if [ ! -x "$bin" ]; then
    echo "1..0 # SKIP $bin not built (make unit)"
    exit 0
fi
exec "$bin"
