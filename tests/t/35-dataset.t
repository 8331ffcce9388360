#!/usr/bin/env bash
# C unit test (ImageFolder scan and seeded split): runs build/tests/test_dataset, which prints
# TAP.
B=${B:-build}
bin="$B/tests/test_dataset"
if [ ! -x "$bin" ]; then
    echo "1..0 # SKIP $bin not built (make unit)"
    exit 0
fi
exec "$bin"
