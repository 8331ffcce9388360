#!/usr/bin/env bash
# The golden cases again, with lwlc built under AddressSanitizer and UBSan.
B=${B:-build}
export LWLC=build/asan/lwlc ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
exec python3 "$(dirname "$0")/../golden/run.py"
