#!/usr/bin/env bash
# ImageNet-100 as a tree of symbolic links: for each class (wnid) of a class list,
# OUT/train/<wnid> and OUT/val/<wnid> link to the ImageNet folders, ready for
# `split folders`. Usage: tools/imagenet100_links.sh IMAGENET_DIR CLASS_LIST OUT
# IMAGENET_DIR holds train/<wnid>/ and val/<wnid>/ (val sorted into class folders).
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 IMAGENET_DIR CLASS_LIST OUT" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
list=$2
out=$3

[ -d "$src/train" ] || { echo "$0: $src/train: no such directory" >&2; exit 1; }
[ -d "$src/val" ] || { echo "$0: $src/val: no such directory" >&2; exit 1; }
[ -r "$list" ] || { echo "$0: $list: cannot read the class list" >&2; exit 1; }

mkdir -p "$out/train" "$out/val"
n=0
missing=0
while IFS= read -r line || [ -n "$line" ]; do
    wnid=$(printf '%s' "$line" | tr -d '\r' | sed 's/#.*//; s/^[[:space:]]*//; s/[[:space:]]*$//')
    [ -n "$wnid" ] || continue
    for part in train val; do
        if [ ! -d "$src/$part/$wnid" ]; then
            echo "$0: $src/$part/$wnid: missing" >&2
            missing=$((missing + 1))
            continue
        fi
        ln -sfn "$src/$part/$wnid" "$out/$part/$wnid"
    done
    n=$((n + 1))
done < "$list"

echo "imagenet100_links: $n classes linked under $out"
[ "$missing" -eq 0 ] || { echo "$0: $missing class folders missing" >&2; exit 1; }
