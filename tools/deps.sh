#!/usr/bin/env bash
# Installs the Debian packages lwlc needs when they are missing, so that on a
# fresh machine `make test` and `make demo` are all the set-up there is.
# Usage: tools/deps.sh [test|demo]   (prints what it installs; quiet otherwise)
set -euo pipefail

# Build: the front end and the runtime's data path.
pkgs=(flex bison gcc make pkg-config libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev libgsl-dev)
# Build: the CPU engine (oneDNN, OpenBLAS) and the safetensors header parser.
pkgs+=(libdnnl-dev libopenblas-dev libcjson-dev)
# Reports: training curves drawn by gnuplot (tools/plot_curves.py).
pkgs+=(gnuplot-nox)
# Data: the demo's real image data set, and Pillow to write it as JPEG files.
pkgs+=(dataset-fashion-mnist python3 python3-pil)
# Tests only: the C test framework, the TAP harness, sanitizer runtimes, the oracle.
if [ "${1:-test}" != demo ]; then
    pkgs+=(libcmocka-dev perl clang libclang-rt-14-dev python3-torchvision python3-numpy
           python3-scipy)
    # CPU ranks (mpirun -np N) and their test: Open MPI
    pkgs+=(libopenmpi-dev openmpi-bin)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
