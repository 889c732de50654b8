#!/usr/bin/env bash
# `make bench`: the engine's workloads on the cpu backend (Go, oneDNN) and the same
# nets in PyTorch, back to back in one run, THREADS threads each, median of REPS
# repetitions; prints a table of ms/op, Go/PyTorch ratio, GFLOP/s and % of the
# fp32 peak measured by an AVX-512 FMA loop. Needs libdnnl-dev and python3-torch
# (installed here through scripts/deps.sh and scripts/apt-packages-reference.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
REPS=${REPS:-5}
scripts/deps.sh scripts/apt-packages-reference.txt >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "bench: building hzbench" >&2
(cd engine && go build -o "$out/hzbench" ./bench/cmd/hzbench)
echo "bench: Go (cpu backend), $THREADS threads, $REPS reps" >&2
"$out/hzbench" -threads "$THREADS" -reps "$REPS" > "$out/go.jsonl"
"$out/hzbench" -threads "$THREADS" -rss srcnn >> "$out/go.jsonl"
echo "bench: PyTorch, $THREADS threads, $REPS reps" >&2
/usr/bin/python3 scripts/bench/torch_bench.py --threads "$THREADS" --reps "$REPS" > "$out/torch.jsonl"
/usr/bin/python3 scripts/bench/table.py "$out/go.jsonl" "$out/torch.jsonl"
