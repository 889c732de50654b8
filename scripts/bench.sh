#!/usr/bin/env bash
# `make bench`: the engine's workloads (engine/bench: model.Network inference of the
# study presets and the engine/train GAN loop) on the cpu backend and, for inference,
# the bfloat16 cpu-bf16 backend (where oneDNN sees native bfloat16), then the same
# nets in ONNX Runtime (fp32, CPU execution provider; the inference nets exported
# from PyTorch as ONNX) and in PyTorch (fp32, and bf16 autocast), back to back in
# one run (one workload at a time on all three), THREADS threads each, median of
# REPS repetitions; prints the CPU's ISA
# flags and oneDNN's effective ISA, then a table of ms/op, Go/ORT and Go/PyTorch
# ratios, GFLOP/s, % of the fp32 peak measured by an FMA loop (AVX-512, or AVX2
# where the CPU or the cap allows no more), allocs/op and peak RSS.
#
# Under an ISA cap (`DNNL_MAX_CPU_ISA=AVX2 make bench`) oneDNN, and so the Go engine
# and PyTorch's oneDNN convolutions, behave as on an AVX2-only CPU; ONNX Runtime's
# own kernels (MLAS) pick their ISA from CPUID and have no such cap.
#
# Needs libdnnl-dev and python3-torch (installed through scripts/deps.sh and
# scripts/apt-packages-reference.txt) and onnxruntime-node (pinned in
# scripts/bench/ort/package-lock.json, installed into .cache/ort by
# scripts/bench/ort_setup.sh). ORT=0 leaves ONNX Runtime out.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
REPS=${REPS:-5}
ORT=${ORT:-1}
scripts/deps.sh scripts/apt-packages-reference.txt >&2
if [ "$ORT" != 0 ]; then
	scripts/bench/ort_setup.sh
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "bench: building hzbench" >&2
(cd engine && go build -o "$out/hzbench" ./bench/cmd/hzbench)
# oneDNN prints its version, runtime and effective ISA (after any
# DNNL_MAX_CPU_ISA / ONEDNN_MAX_CPU_ISA cap) on its first primitive.
ONEDNN_VERBOSE=1 DNNL_VERBOSE=1 "$out/hzbench" -probe -backends cpu -threads "$THREADS" > "$out/onednn.txt"
grep -E '^(onednn|dnnl)_verbose,info,cpu,isa:' "$out/onednn.txt" | sed 's/^[a-z]*_verbose,info,cpu,/bench: oneDNN /' >&2 || true
BACKENDS=${BACKENDS:-$("$out/hzbench" -list)}
WORKLOADS=${WORKLOADS:-srcnn_b1 srcnn_b8 generator_h128_b16 train_step_h64_b16}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: load average $load_before" >&2
if [ "$ORT" != 0 ]; then
	echo "bench: exporting the inference nets from PyTorch as ONNX (opset 13)" >&2
	/usr/bin/python3 scripts/bench/torch_bench.py --onnx "$out/onnx" > "$out/onnx.jsonl"
fi
# One workload at a time, on the three runtimes back to back, so that a load
# that changes during the run (a shared machine) falls on all three alike.
: > "$out/go.jsonl"
: > "$out/ort.jsonl"
: > "$out/torch.jsonl"
# Without cpu-bf16 (no native bfloat16, or a cap below AVX-512) PyTorch's bf16
# autocast has no oneDNN kernel either: leave its pass out.
ptargs=()
case ",$BACKENDS," in *,cpu-bf16,*) ;; *) ptargs=(--no-bf16) ;; esac
loads=()
for w in $WORKLOADS; do
	loads+=("$w $(cut -d' ' -f1 /proc/loadavg)")
	echo "bench: $w: Go ($BACKENDS), $THREADS threads, $REPS reps" >&2
	"$out/hzbench" -threads "$THREADS" -reps "$REPS" -backends "$BACKENDS" -only "$w" >> "$out/go.jsonl"
	if [ "$ORT" != 0 ] && [ "${w#train}" = "$w" ]; then
		echo "bench: $w: ONNX Runtime" >&2
		node scripts/bench/ort_bench.js --ort .cache/ort --models "$out/onnx" --threads "$THREADS" --reps "$REPS" \
			--only "$w" >> "$out/ort.jsonl"
	fi
	echo "bench: $w: PyTorch" >&2
	/usr/bin/python3 scripts/bench/torch_bench.py --threads "$THREADS" --reps "$REPS" --only "$w" "${ptargs[@]}" >> "$out/torch.jsonl"
done
for b in ${BACKENDS//,/ }; do
	"$out/hzbench" -threads "$THREADS" -rss srcnn -backends "$b" >> "$out/go.jsonl"
done
ortargs=()
if [ "$ORT" != 0 ]; then
	ortargs=(--ort "$out/ort.jsonl")
fi
echo "load average before: $load_before"
/usr/bin/python3 scripts/bench/table.py "$out/go.jsonl" "$out/torch.jsonl" "${ortargs[@]}" --onednn "$out/onednn.txt"
echo "load average (1 min) at each workload's start: $(IFS=,; echo "${loads[*]}" | sed 's/,/, /g')"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
