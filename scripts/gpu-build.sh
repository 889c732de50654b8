#!/usr/bin/env bash
# `make gpu-build`: everything scripts/gpu-check.sh runs on a GPU machine that
# has the NVIDIA driver, CUDA and PyTorch but no Go, built here into gpu/
# (git-ignored), within the device tool's 64 MiB carry limit:
#   gpu/cuda.test       engine/backend/cuda's parity tests and benchmarks
#   gpu/choose.test     engine/backend/choose: the layer stack on every backend vs ref
#   gpu/hzbench         the make-bench workloads (SRCNN b1/b8, generator, DCGAN
#                       train step), -tags cuda
#   gpu/lib/            the shared libraries these link besides libc and the
#                       driver (oneDNN and OpenMP for the cpu backend built in),
#                       oneDNN gzipped
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cuda-sdk.sh)"
export CGO_ENABLED=1
export CGO_CFLAGS="-I$CUDA_SDK/include ${CGO_CFLAGS:-}"
export CGO_LDFLAGS="-L$CUDA_SDK/lib/x86_64-linux-gnu/stubs ${CGO_LDFLAGS:-}"
rm -rf gpu && mkdir -p gpu/lib
(
  cd engine
  go test -tags cuda -c -trimpath -o ../gpu/cuda.test ./backend/cuda/
  go test -tags cuda -c -trimpath -o ../gpu/choose.test ./backend/choose/
  go build -tags cuda -trimpath -o ../gpu/hzbench ./bench/cmd/hzbench
)
# Libraries the binaries need that a GPU image may lack: everything ldd resolves
# except libc's own and the driver (which the machine has and must supply).
for lib in $(ldd gpu/*.test gpu/hzbench | awk '/=> \// {print $3}' | sort -u); do
  case $(basename "$lib") in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*|libstdc++.so.*|libgcc_s.so.*) continue ;;
  esac
  cp -L "$lib" gpu/lib/
done
if [ -f gpu/lib/libdnnl.so.2 ]; then gzip -9 gpu/lib/libdnnl.so.2; fi
total=$(du -sb gpu | cut -f1)
echo "gpu-build: gpu/ holds $((total / 1024 / 1024)) MiB:"; ls -la gpu gpu/lib
if [ "$total" -gt $((60 * 1024 * 1024)) ]; then
  echo "gpu-build: gpu/ is over 60 MiB; the device tool carries 64 MiB in all" >&2; exit 1
fi
