#!/usr/bin/env bash
# `make ptx`: compiles the CUDA backend's kernels (engine/backend/cuda/kernels/*.cu)
# to the PTX that is committed and embedded, with nvcc 11.8 from scripts/cuda-sdk.sh.
# PTX for compute_80 (A100 and newer: the driver JIT-compiles it for H100/H200).
#   scripts/ptx.sh           write kernels/*.ptx
#   scripts/ptx.sh -check    compile into a temporary folder and fail if the
#                            committed PTX differs (the sources changed without make ptx)
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cuda-sdk.sh nvcc)"
dir=engine/backend/cuda/kernels
out=$dir
if [ "${1:-}" = -check ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
# nvcc 11.8 wants gcc ≤ 11 as its host compiler; bookworm has 12. For -ptx the
# host compiler only preprocesses, so the newer one is allowed explicitly.
host=$(command -v g++ || true)
if [ -z "$host" ]; then echo "ptx: no g++ (nvcc's host preprocessor)" >&2; exit 1; fi
for cu in "$dir"/*.cu; do
  name=$(basename "$cu" .cu)
  "$NVCC" -ptx -arch=compute_80 -O3 -ccbin "$host" -allow-unsupported-compiler \
    -I "$dir" -o "$out/$name.ptx" "$cu"
done
if [ "${1:-}" = -check ]; then
  status=0
  for cu in "$dir"/*.cu; do
    name=$(basename "$cu" .cu)
    if ! cmp -s "$out/$name.ptx" "$dir/$name.ptx"; then
      echo "ptx: $dir/$name.ptx is not what $name.cu compiles to; run 'make ptx' and commit it" >&2
      status=1
    fi
  done
  for ptx in "$dir"/*.ptx; do
    [ -f "$dir/$(basename "$ptx" .ptx).cu" ] || { echo "ptx: $ptx has no .cu source" >&2; status=1; }
  done
  [ $status = 0 ] && echo "ptx: committed PTX matches its sources (nvcc $("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
  exit $status
fi
echo "ptx: wrote $(ls "$dir"/*.ptx | wc -l) files into $dir"
