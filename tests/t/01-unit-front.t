#!/usr/bin/env bash
# C unit tests of the front end (cmocka, TAP output).
exec "${B:-build}/tests/test_front"
