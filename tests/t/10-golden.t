#!/usr/bin/env bash
# Golden diagnostics of lwlc (exact text, caret lines included).
exec python3 "$(dirname "$0")/../golden/run.py"
