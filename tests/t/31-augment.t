#!/usr/bin/env bash
# C unit test (parameter samplers and per-pixel identities): runs build/tests/test_augment, which
# prints TAP.
B=${B:-build}
bin="$B/tests/test_augment"
if [ ! -x "$bin" ]; then
    echo "1..0 # SKIP $bin not built (make unit)"
    exit 0
fi
exec "$bin"
