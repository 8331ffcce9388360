#!/usr/bin/env bash
# Makes build/gpukit/, what tests/gpu/run.sh needs on a GPU machine that has nvcc, a driver
# and PyTorch (whose pip packages carry cuDNN, cuBLAS and NCCL) but none of this project's
# Debian libraries: lwlc and liblwl built here (without MPI), the shared libraries liblwl's
# programs link (libjpeg, libpng, oneDNN, libgomp, cJSON, GSL) with their headers, and a
# small Fashion-MNIST tree. Carry it: device.run carry ["build/gpukit"] (about 50 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${LWL_PYTHON:-/usr/bin/python3}
kit=build/gpukit
lib=/usr/lib/x86_64-linux-gnu
rm -rf "$kit"
mkdir -p "$kit/lib" "$kit/include"

# lwlc, liblwl (no MPI: the GPU ranks meet through NCCL) and liblwl_cuda for sm_80 and sm_90
make --no-print-directory B="$kit/build" MPICC=false all >"$kit/make.log" 2>&1 ||
    { tail -n 30 "$kit/make.log"; exit 1; }

# the shared libraries, under their sonames and their link names
for so in libjpeg.so.62 libpng16.so.16 libdnnl.so.2 libgomp.so.1 libcjson.so.1 libgsl.so.27 \
          libgslcblas.so.0; do
    cp -L "$lib/$so" "$kit/lib/$so"
    base=${so%%.so*}
    ln -sf "$so" "$kit/lib/$base.so"
done
ln -sf libpng16.so.16 "$kit/lib/libpng.so"

# their headers
cp /usr/include/jpeglib.h /usr/include/jmorecfg.h /usr/include/jerror.h \
   /usr/include/x86_64-linux-gnu/jconfig.h /usr/include/png.h /usr/include/pngconf.h \
   /usr/include/pnglibconf.h /usr/include/dnnl*.h "$kit/include/"
cp -r /usr/include/cjson /usr/include/gsl /usr/include/oneapi "$kit/include/"

# the data of the step checks: 20 images per class
"$PY" tools/fmnist_to_imagefolder.py --per-class 20 "$kit/data/fmnist" >/dev/null
echo "gpu_kit: $(du -sh "$kit" | cut -f1) in $kit"
