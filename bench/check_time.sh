#!/usr/bin/env bash
# Time lwlc --check on every spec of specs/ and examples/ (goal: under 10 ms
# each, process start included). Reported, never asserted.
# Usage: bench/check_time.sh [runs]   (default 50 runs per spec)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
lwlc=build/lwlc
[ -x "$lwlc" ] || { echo "bench: build lwlc first (make)"; exit 1; }
printf '%-28s %10s %10s\n' spec "mean ms" "best ms"
for spec in specs/*.lwl examples/*.lwl; do
    best=999999999; total=0
    for _ in $(seq "$runs"); do
        t0=$(date +%s%N)
        "$lwlc" --check "$spec" 2>/dev/null || true
        t=$(( $(date +%s%N) - t0 ))
        total=$((total + t))
        [ "$t" -lt "$best" ] && best=$t
    done
    awk -v s="$spec" -v m="$total" -v n="$runs" -v b="$best" \
        'BEGIN { printf "%-28s %10.2f %10.2f\n", s, m / n / 1e6, b / 1e6 }'
done
