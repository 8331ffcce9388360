#!/usr/bin/env bash
# The fuzz corpus and every crasher the fuzzer found, replayed through the
# front end under AddressSanitizer and UBSan.
cd "$(dirname "$0")/../../tests/fuzz/corpus" || exit 1
echo "1..1"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
if out=$(../../../build/asan/fuzz-replay . ../crashers 2>&1); then
    echo "ok 1 - $out"
else
    echo "not ok 1 - replay failed"
    sed 's/^/# /' <<<"$out" | tail -n 40
    exit 1
fi
