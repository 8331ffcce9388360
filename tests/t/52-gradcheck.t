#!/usr/bin/env bash
# Gradient checks of the generated step's CPU ops (compiler/tmpl/cpu_ops.h): every backward,
# and the whole LEWEL_B head, against central differences (tests/unit/test_ops.c).
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
. "$here/tests/t/tap.sh"

if [ -x "$here/$B/tests/test_ops" ]; then
    ok "unit: test_ops (every op's backward and the whole head against finite differences)" \
        "$here/$B/tests/test_ops"
else
    echo "# SKIP $B/tests/test_ops not built (make unit)"
fi
finish
