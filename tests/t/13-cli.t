#!/usr/bin/env bash
# lwlc's command line: help, version, exit codes, hostile inputs that must
# neither hang nor crash.
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$("$LWLC" --help); is "$?" 0 "--help exits 0"
is "$(head -n1 <<<"$out" | cut -c1-11)" "usage: lwlc" "--help prints the usage on stdout"
is "$("$LWLC" --version)" "lwlc 0.1.0" "--version"
"$LWLC" >/dev/null 2>&1; is "$?" 2 "no spec is a usage error"
"$LWLC" a.lwl --target gpu >/dev/null 2>&1; is "$?" 2 "bad --target is a usage error"
"$LWLC" -o >/dev/null 2>&1; is "$?" 2 "-o without a value"
"$LWLC" --target cuda -S --emit-dir "$tmp/gen" specs/crop_gray.lwl 2>/dev/null
is "$?" 0 "--target cuda -S writes the sources"
is "$(ls "$tmp/gen" | grep -c '^\(net\|views\)\.cu$')" 2 "... net.cu and views.cu among them"

err=$("$LWLC" --check "$tmp/none.lwl" 2>&1); is "$?" 1 "a missing spec is an error"
is "$(head -n1 <<<"$err")" "lwlc: error: cannot read '$tmp/none.lwl': No such file or directory" "... naming the file"
err=$("$LWLC" --check "$tmp" 2>&1); is "$?" 1 "a directory is refused"
is "$(head -n1 <<<"$err")" "lwlc: error: cannot read '$tmp': Is a directory" "... as a directory"

# A FIFO, a device and a huge file must not hang or exhaust lwlc.
mkfifo "$tmp/fifo.lwl"
printf 'use "fifo.lwl"\n' > "$tmp/a.lwl"
err=$(timeout 10 "$LWLC" --check "$tmp/a.lwl" 2>&1); is "$?" 1 "use of a FIFO is refused, not waited on"
printf 'use "/dev/zero"\n' > "$tmp/b.lwl"
err=$(timeout 10 "$LWLC" --check "$tmp/b.lwl" 2>&1); is "$?" 1 "use of a device is refused"
printf 'data { root "d"; classes "/dev/urandom" }\n' > "$tmp/c.lwl"
err=$(timeout 10 "$LWLC" --check "$tmp/c.lwl" 2>&1); is "$?" 1 "a device as class list is refused"

# Deep nesting and long input end in errors, not in a crash.
python3 -c 'print("a {" * 100000)' > "$tmp/deep.lwl"
timeout 20 "$LWLC" --check "$tmp/deep.lwl" >/dev/null 2>&1; is "$?" 1 "100000 nested blocks: an error"
python3 -c 'print("train { epochs 3 }\n" * 200000)' > "$tmp/long.lwl"
err=$(timeout 20 "$LWLC" --check "$tmp/long.lwl" 2>&1); is "$?" 1 "200000 statements: errors, in time"
python3 -c 'print("data { root \"" + "x" * 1000000 + "\" }")' > "$tmp/wide.lwl"
timeout 20 "$LWLC" --check "$tmp/wide.lwl" >/dev/null 2>&1; is "$?" 1 "a 1 MB string: no fixed buffer"
printf 'data { root "d" }\x00\xff\xfe augment {' > "$tmp/bin.lwl"
timeout 10 "$LWLC" --check "$tmp/bin.lwl" >/dev/null 2>&1; is "$?" 1 "binary bytes: errors"

# -D on --print, and names of views.
p=$("$LWLC" --print -D train.epochs=7 -D 'augment.view2.solarize=p 0.5' specs/lewel_b.lwl 2>/dev/null)
is "$(grep -c '^    epochs 7$' <<<"$p")" 1 "-D train.epochs=7 is printed"
is "$(grep -c 'solarize p 0.5 threshold 128' <<<"$p")" 1 "-D replaces one transform of a view"
finish
