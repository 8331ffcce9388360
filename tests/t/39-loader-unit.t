#!/usr/bin/env bash
# C unit test (epoch orders, rank spans of a batch, text, views from a decoded region): runs
# build/tests/test_loader, which prints TAP.
B=${B:-build}
bin="$B/tests/test_loader"
if [ ! -x "$bin" ]; then
    echo "1..0 # SKIP $bin not built (make unit)"
    exit 0
fi
exec "$bin"
