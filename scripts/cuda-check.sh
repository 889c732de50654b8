#!/usr/bin/env bash
# `make cuda-check` (part of `make ci`): the CUDA backend checked without a GPU.
#   1. go vet, go build and go test -c with -tags cuda for the packages that
#      hold or choose the backend, against the headers and link stubs that
#      scripts/cuda-sdk.sh fetches (pinned, cached in ~/.cache/hirez/cuda);
#   2. the parity tests against ref with -tags cudaemu: the same Go code and
#      the same .cu kernels, compiled as C++ and run on the CPU by a small
#      emulation of the CUDA execution model (engine/backend/cuda/emu.cc): it
#      checks the kernels' index arithmetic and the Go side's arguments, not
#      the GPU (the slow random-shape and two-thread parts are left to
#      scripts/gpu-check.sh and to a manual run, see docs/cuda.md);
#   3. when nvcc is in the cache (after `make ptx`), the committed PTX must be
#      what its .cu sources compile to, and ptxas must assemble it for sm_90
#      (H100/H200) without spills; without nvcc this step says so and passes,
#      so CI never depends on the toolkit.
# The test binaries cannot run here: gorgonia.org/cu's init exits without a
# driver. scripts/gpu-check.sh runs them on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
eval "$(scripts/cuda-sdk.sh)"
export CGO_ENABLED=1
export CGO_CFLAGS="-I$CUDA_SDK/include ${CGO_CFLAGS:-}"
export CGO_LDFLAGS="-L$CUDA_SDK/lib/x86_64-linux-gnu/stubs ${CGO_LDFLAGS:-}"
pkgs=(./backend/cuda/ ./backend/choose/ ./bench/)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(
  cd engine
  echo "== cuda: go vet -tags cuda ${pkgs[*]}"
  go vet -tags cuda "${pkgs[@]}"
  go vet -tags cudaemu ./backend/cuda/
  echo "== cuda: go build -tags cuda ${pkgs[*]}"
  go build -tags cuda "${pkgs[@]}"
  for p in ./backend/cuda/ ./backend/choose/; do
    echo "== cuda: go test -tags cuda -c $p"
    go test -tags cuda -c -o "$tmp/$(basename "$p").test" "$p"
  done
)
# A binary with the backend links libcuda.so.1 (the driver, absent here); no
# package built without the tag may import cu (a CPU-only binary never loads
# libcuda).
if ! readelf -d "$tmp/cuda.test" | grep -q 'libcuda.so.1'; then
  echo "cuda-check: the cuda test binary does not link libcuda.so.1" >&2; exit 1
fi
if (cd engine && go list -deps ./... | grep -q '^gorgonia.org/cu'); then
  echo "cuda-check: a package built without -tags cuda imports gorgonia.org/cu" >&2; exit 1
fi
echo "== cuda: kernels on the CPU emulation vs ref (go test -tags cudaemu -short)"
# emu.cc #includes kernels/*.cu, which Go's build cache does not hash (only
# the package directory's own files): the kernels' hash in the C++ flags
# makes an edited kernel rebuild instead of testing a stale object.
kernels=$(cat engine/backend/cuda/kernels/*.cu engine/backend/cuda/kernels/*.cuh | sha256sum | cut -c1-16)
(cd engine && CGO_CXXFLAGS="-O2 -DHZ_KERNELS_SHA=$kernels" go test -tags cudaemu -short -count=1 -timeout 300s \
  -run 'TestConformance/(memory|activations|matmul|bias|conv2d|resample|batchnorm|losses|adam|finite|concurrent|bad_input)$|TestLargeGEMM|TestNotClosedTwice' \
  ./backend/cuda/)

root=$(dirname "$CUDA_SDK")/..
if [ -f "$root/toolkit.ok" ]; then
  scripts/ptx.sh -check
  ptxas=$root/toolkit/usr/bin/ptxas
  for f in engine/backend/cuda/kernels/*.ptx; do
    info=$("$ptxas" -arch=sm_90 -v "$f" -o /dev/null 2>&1)
    if grep -qE '[1-9][0-9]* bytes spill' <<<"$info"; then
      echo "cuda-check: $f spills registers on sm_90:" >&2; grep spill <<<"$info" >&2; exit 1
    fi
  done
  echo "cuda-check: ptxas assembles every kernel for sm_90 without spills"
else
  echo "cuda-check: PTX check skipped: nvcc is not in the CUDA cache (run 'make ptx' once to fetch it)"
fi
echo "cuda-check: ok ($((SECONDS - start)) s)"
