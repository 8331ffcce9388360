#!/usr/bin/env bash
# generated/ is lwlc's current output for every spec (regenerated and compared
# byte for byte), the same spec always gives the same bytes, and the spec's
# values are specialised into the code: p 0 leaves no code, p 1 draws no coin.
cd "$(dirname "$0")/../.." || exit 1
. tests/t/tap.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for s in specs/*.lwl examples/*.lwl; do
    n=$(basename "$s" .lwl)
    "$LWLC" -S --emit-dir "$tmp/$n" "$s" 2>/dev/null
    ok "generated/$n is current" diff -r "$tmp/$n" "generated/$n"
done
"$LWLC" -S --emit-dir "$tmp/again" specs/crop_gray.lwl 2>/dev/null
ok "the same spec gives the same bytes" diff -r "$tmp/again" "$tmp/crop_gray"
ok "no absolute path in generated code" bash -c "! grep -rn '$PWD' generated/"

v1() { sed -n '/^static int view1_make/,/^}/p' "generated/$1/views.c"; }
v2() { sed -n '/^static int view2_make/,/^}/p' "generated/$1/views.c"; }
is "$(v1 lewel_b | grep -c lwl_solarize_image)" 0 "lewel_b view 1: solarize p 0 has no code"
is "$(v2 lewel_b | grep -c lwl_solarize_image)" 1 "lewel_b view 2: solarize p 0.2 has code"
is "$(v1 lewel_b | grep -B2 lwl_gaussian_blur | grep -c lwl_sample_coin)" 0 \
   "lewel_b view 1: blur p 1 draws no coin"
is "$(v2 lewel_b | grep -B3 'lwl_gaussian_blur(&im' | grep -c 'lwl_sample_coin.*0.10000000000000001')" 1 \
   "lewel_b view 2: blur p 0.1 is a coin with its probability as a literal"
is "$(v1 crop_gray | grep -c -E 'lwl_jitter|lwl_hflip|blur|solarize')" 0 \
   "crop_gray: only the crop and grayscale"
is "$(v1 gray_v1 | grep -c lwl_grayscale) $(v2 gray_v1 | grep -c lwl_grayscale)" "1 0" \
   "gray_v1: grayscale in view 1 only"
finish
