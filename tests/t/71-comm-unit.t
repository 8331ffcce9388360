#!/usr/bin/env bash
# C unit test of the ranks' launch variables (which launcher wins, SLURM's task lists) and of
# the TCP exchange of rank 0's bytes for torchrun's GPU ranks: runs build/tests/test_comm,
# which prints TAP.
B=${B:-build}
bin="$B/tests/test_comm"
if [ ! -x "$bin" ]; then
    echo "1..0 # SKIP $bin not built (make unit)"
    exit 0
fi
exec "$bin"
