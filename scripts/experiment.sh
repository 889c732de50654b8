#!/usr/bin/env bash
# The study's comparison at 32 → 64 px (docs/experiment.md): single DCGAN, multi-stage
# GAN, DCGAN + SRCNN, at equal epochs and at equal wall-clock budget, fixed seeds.
# Default ≈ 55 min on the 2-core dev machine; QUICK=1 ≈ 3 min (smoke-sized numbers).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -d data/noto128/train || ! -d data/noto128/heldout ]]; then
	echo "experiment: data/noto128 is missing; running 'make data' first" >&2
	make data
fi
mkdir -p bin
go build -o bin/hirez ./cli/cmd/hirez

if [[ "${QUICK:-0}" == 1 ]]; then
	args=(--epochs 0.05 --budget 40s --n 100 --sr-eval 50
		--work out/experiment-quick --grids out/experiment-quick/grids --report out/experiment-quick/experiment.md)
else
	args=(--epochs 5 --budget 8m --n 500 --sr-eval 200
		--work out/experiment --grids docs/experiment --report docs/experiment.md)
fi
exec bin/hirez experiment --gan-data data/noto128/train --heldout data/noto128/heldout --side 32 --seed 1 "${args[@]}" "$@"
