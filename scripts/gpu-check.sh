#!/usr/bin/env bash
# The CUDA backend's checks on a machine with an NVIDIA GPU and no Go, in one
# call of at most 5 minutes: run `make gpu-build` first (it fills gpu/), carry
# gpu/ there, and run scripts/gpu-check.sh from the repository root. Writes
# logs and report.md under $OUT (default gpu/out):
#   1. nvidia-smi, the driver and PyTorch's view of the card;
#   2. gpu/cuda.test: every op against ref (backendtest: awkward and random
#      shapes, bad input, concurrency), large GEMMs, close twice;
#   3. gpu/choose.test: the layer stack forward and backward on every
#      backend (cuda, cpu) against ref;
#   4. benchmarks: BenchmarkConv2D/cuda and BenchmarkSGEMM; hzbench on cuda
#      (SRCNN b1/b8 at 128 → 256, generator h128 b16, DCGAN train step h64 b16);
#   5. the same workloads in PyTorch on the same card (fp32, TF32 off).
# A step that fails is reported and the next one still runs; the exit status
# is that of the parity tests.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d gpu ] || { echo "gpu-check: no gpu/ folder; run make gpu-build where Go is and carry gpu/" >&2; exit 2; }
OUT=${OUT:-$PWD/gpu/out}
mkdir -p "$OUT"
lib=$(mktemp -d)
trap 'rm -rf "$lib"' EXIT
cp gpu/lib/* "$lib"/ 2>/dev/null || true
if [ -f "$lib/libdnnl.so.2.gz" ]; then gunzip "$lib/libdnnl.so.2.gz"; fi
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
start=$SECONDS
report=$OUT/report.md
step() { # step <name> <timeout s> <command…>: runs it, logs to $OUT/<name>.log
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "| $name | $rc | $((SECONDS - t0)) s |" >> "$report"
  echo "gpu-check: $name: exit $rc in $((SECONDS - t0)) s" >&2
  return $rc
}
{
  echo "# gpu-check $(date -u +%FT%TZ)"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  echo '```'
  echo
  echo "| step | exit | time |"
  echo "|---|---|---|"
} > "$report"
ldd gpu/cuda.test gpu/choose.test gpu/hzbench > "$OUT/ldd.log" 2>&1

step parity 150 gpu/cuda.test -test.v -test.count=1 -test.timeout=140s
parity=$?
step layers 60 gpu/choose.test -test.v -test.count=1 -test.run 'TestLayersAgree|TestSelection|TestUnavailable' -test.timeout=50s
layers=$?
step bench-go 60 gpu/cuda.test -test.run '^$' -test.bench . -test.benchtime 2s -test.timeout=55s
step hzbench 60 gpu/hzbench -backends cuda -reps 5
if command -v python3 >/dev/null && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  step torch 60 python3 scripts/gpu/torch_gpu.py --reps 5
else
  echo "| torch | skipped: no python3 with CUDA PyTorch | |" >> "$report"
fi
{
  echo
  echo "## Parity failures"
  echo '```'
  grep -E -- '--- FAIL|panic|error' "$OUT/parity.log" "$OUT/layers.log" | head -60
  echo '```'
  echo "## Go benchmarks"
  echo '```'
  grep -E '^Benchmark' "$OUT/bench-go.log"
  echo '```'
  echo "## hzbench (cuda) vs PyTorch"
  echo '```'
  cat "$OUT/hzbench.log"
  cat "$OUT/torch.log" 2>/dev/null
  echo '```'
  echo "total $((SECONDS - start)) s"
} >> "$report"
cat "$report"
[ $parity = 0 ] && [ $layers = 0 ]
