#!/usr/bin/env bash
# C unit test (Philox 4x32-10 known answers and key layout): runs build/tests/test_philox, which
# prints TAP.
B=${B:-build}
bin="$B/tests/test_philox"
if [ ! -x "$bin" ]; then
    echo "1..0 # SKIP $bin not built (make unit)"
    exit 0
fi
exec "$bin"
