#!/usr/bin/env bash
# Every spec of specs/ and examples/ checks cleanly; --print round-trips: the
# printed spec checks, and printing it again gives the same bytes.
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh
LWLC=$(readlink -f "$LWLC")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r specs examples "$tmp/"

for spec in specs/*.lwl examples/*.lwl; do
    name=$(basename "$spec" .lwl)
    err=$("$LWLC" --check "$spec" 2>&1); rc=$?
    is "$rc" 0 "$spec checks"
    case $spec in
    specs/*) is "$(grep -c 'warning: kNN memory' <<<"$err")" 1 "$spec warns once of the kNN overlap";;
    *)       is "$err" "" "$spec checks without a warning";;
    esac

    dir=$tmp/$(dirname "$spec")
    ( cd "$dir" && "$LWLC" --print "$name.lwl" > "p1_$name.lwl" 2>/dev/null \
      && "$LWLC" --print "p1_$name.lwl" > "p2_$name.lwl" 2>/dev/null )
    ok "$spec: --print is a fixed point" cmp "$dir/p1_$name.lwl" "$dir/p2_$name.lwl"
    is "$(grep -c '^name "'"$name"'"$' "$dir/p1_$name.lwl")" 1 "$spec: printed name is $name"
done

# The study's experiments differ from the base only in their views.
base=$(cd "$tmp/specs" && "$LWLC" --print lewel_b.lwl 2>/dev/null | sed '/^augment {/,/^}/d;/^name/d')
for spec in specs/*.lwl; do
    other=$(cd "$tmp/specs" && "$LWLC" --print "$(basename "$spec")" 2>/dev/null \
            | sed '/^augment {/,/^}/d;/^name/d')
    is "$other" "$base" "$spec: only the views differ from lewel_b"
done

# A few views as the study defines them.
v=$(cd "$tmp/specs" && "$LWLC" --print gray_v1.lwl 2>/dev/null | sed -n '/view 1/,/normalize/p' | tr -s ' ')
is "$v" "$(printf ' view 1 {\n grayscale p 1\n }\n view 2 {\n grayscale p 0\n }\n normalize mean [0.485, 0.456, 0.406] std [0.229, 0.224, 0.225]')" "gray_v1: always gray in view 1, never in view 2"
v=$(cd "$tmp/specs" && "$LWLC" --print solarize.lwl 2>/dev/null | grep -c 'solarize p 0.2 threshold 128')
is "$v" 1 "solarize: view 2 keeps p 0.2"
finish
