#!/usr/bin/env bash
# Builds `vocmine` with candle's CUDA backend on a machine without a GPU or a CUDA install:
# the compiler, headers and libraries come from NVIDIA's wheels on the Python package index.
#   bash models/gpu/build_cuda.sh            -> target-cuda/release/vocmine
# CUDA 13.0 is pinned: the PTX that nvcc writes must not be newer than the GPU driver
# (driver 580 = CUDA 13.0 on the lent H200 machines). candle links the CUDA libraries
# (cudarc's dynamic-linking), so the link needs libcuda.so, which only a driver install has:
# a stub with the driver API's symbols (from cudarc's own bindings) stands in for it, and the
# real libcuda.so.1 of the GPU machine is loaded at run time. About 25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${CUDA_VENV:-/opt/vocmine-cuda}
if [ ! -x "$VENV/bin/pip" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" \
  "nvidia-cuda-cccl==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*" \
  "nvidia-cublas==13.0.*" "nvidia-cuda-nvrtc==13.0.*" "nvidia-curand<10.5"
N=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
# fetch the sources first so that cudarc's bindings are on disk for the stub
cargo fetch -q
SYS=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys | tail -n 1)
LINK="$VENV/link"
mkdir -p "$LINK"
grep -oE "pub (unsafe )?fn cu[A-Za-z0-9_]+" "$SYS/mod.rs" | awk '{print $NF}' | sort -u |
  awk '{print "void "$1"(void){}"}' > "$LINK/cuda_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINK/libcuda.so" "$LINK/cuda_stub.c"
for l in cublas cublasLt cudart nvrtc; do ln -sf "$N/lib/lib$l.so.13" "$LINK/lib$l.so"; done
ln -sf "$N/lib/libcurand.so.10" "$LINK/libcurand.so"
export PATH="$N/bin:$PATH" CUDA_ROOT="$N" CUDA_PATH="$N" CUDA_HOME="$N" \
  CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} LIBRARY_PATH="$LINK" \
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-cuda}
cargo build --release --features cuda
echo "built $CARGO_TARGET_DIR/release/vocmine (needs libcuda.so.1, libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libcudart.so.13 at run time)"
