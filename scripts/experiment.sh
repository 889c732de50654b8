#!/usr/bin/env bash
# The study's comparison at 32 → 64 px (docs/experiment.md): single DCGAN, multi-stage
# GAN, DCGAN + SRCNN, at equal epochs and at an equal compute budget (process CPU
# time, so a busy machine stretches the run but does not change what each approach
# gets), fixed seeds.
# Default: 5 epochs per stage + 12 CPU-minutes per approach (30 CPU-minutes in all:
# the shared DCGAN at 32 and the second stages get half each) ≈ 40 min on the quiet
# 2-core dev machine (the 2-epoch, 4-minute run took ≈ 20 min); longer when the
# machine is shared. QUICK=1 ≈ 3 min (smoke-sized numbers).
# SWD uses 239 images per set: half the 479 held-out emoji (the floor needs two sets).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -d data/noto128/train || ! -d data/noto128/heldout ]]; then
	echo "experiment: data/noto128 is missing; running 'make data' first" >&2
	make data
fi
mkdir -p bin
go build -o bin/hirez ./cli/cmd/hirez

if [[ "${QUICK:-0}" == 1 ]]; then
	args=(--epochs 0.05 --budget 40s --budget-clock cpu --n 100 --sr-eval 50
		--work out/experiment-quick --grids out/experiment-quick/grids --report out/experiment-quick/experiment.md)
else
	args=(--epochs 5 --budget 12m --budget-clock cpu --n 239 --sr-eval 200
		--work out/experiment --grids docs/experiment --report docs/experiment.md)
fi
exec bin/hirez experiment --gan-data data/noto128/train --heldout data/noto128/heldout --side 32 --seed 1 "${args[@]}" "$@"
