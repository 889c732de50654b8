#!/usr/bin/env bash
# `make bench`: the engine's workloads (engine/bench: model.Network inference of the
# study presets and the engine/train GAN loop) on the cpu backend and, for inference,
# the bfloat16 cpu-bf16 backend (where the CPU has native bfloat16), then the same
# nets in PyTorch (fp32, and bf16 autocast), back to back in one run, THREADS
# threads each, median of REPS repetitions; prints a table of ms/op, Go/PyTorch
# ratios, GFLOP/s, % of the fp32 peak measured by an AVX-512 FMA loop, allocs/op
# and peak RSS. Needs libdnnl-dev and python3-torch (installed here through
# scripts/deps.sh and scripts/apt-packages-reference.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
REPS=${REPS:-5}
scripts/deps.sh scripts/apt-packages-reference.txt >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "bench: building hzbench" >&2
(cd engine && go build -o "$out/hzbench" ./bench/cmd/hzbench)
BACKENDS=${BACKENDS:-$("$out/hzbench" -list)}
echo "bench: load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "bench: Go ($BACKENDS), $THREADS threads, $REPS reps" >&2
"$out/hzbench" -threads "$THREADS" -reps "$REPS" -backends "$BACKENDS" > "$out/go.jsonl"
for b in ${BACKENDS//,/ }; do
	"$out/hzbench" -threads "$THREADS" -rss srcnn -backends "$b" >> "$out/go.jsonl"
done
echo "bench: PyTorch, $THREADS threads, $REPS reps" >&2
/usr/bin/python3 scripts/bench/torch_bench.py --threads "$THREADS" --reps "$REPS" > "$out/torch.jsonl"
/usr/bin/python3 scripts/bench/table.py "$out/go.jsonl" "$out/torch.jsonl"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
