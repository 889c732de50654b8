# hirez — every target works from a fresh clone; `make deps` installs what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Every Go module in the repo (a directory holding go.mod), found rather than listed,
# so a new module is built, linted and tested without touching this file.
MODULES := $(sort $(patsubst ./%/go.mod,%,$(shell find . -name go.mod -not -path './data/*' -not -path './.cache/*' -not -path './out/*')))
GOBIN   := $(CURDIR)/.cache/bin
export PATH := $(GOBIN):$(PATH)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install apt packages (when root) and pinned Go tools; quick when all is there
	@scripts/deps.sh

.PHONY: go-work
go-work: ## regenerate go.work from the modules found in the tree
	@rm -f go.work go.work.sum
	@go work init $(addprefix ./,$(MODULES))
	@echo "go.work: $(MODULES)"

.PHONY: generate
generate: ## regenerate committed code (protobuf/gRPC) with pinned tools
	@scripts/generate.sh

.PHONY: checkgenerate
checkgenerate: ## fail if generated code or go.work drifted from the sources
	@scripts/checkgenerate.sh

.PHONY: lint
lint: ## gofmt, go vet on every module, buf lint
	@scripts/lint.sh $(MODULES)

.PHONY: test
test: test-isa ## every module with -race, after the oneDNN ISA matrix (the README's test command runs this after deps)
	@scripts/test.sh $(MODULES)

.PHONY: test-isa
test-isa: ## cpu backend and every preset at every side vs ref, under each oneDNN ISA (SSE4.1, AVX2, AVX-512, native)
	@scripts/test-isa.sh

.PHONY: bench
bench: deps ## benchmarks side by side with PyTorch (ratios, GFLOP/s)
	@scripts/bench.sh

.PHONY: build
build: deps ## all binaries into bin/
	@scripts/build.sh

.PHONY: data
data: deps ## fetch and verify the datasets into data/
	@scripts/data.sh

.PHONY: demo
demo: build ## the main job: start the stack, make 8 images in out/, stop
	@scripts/demo.sh

.PHONY: up
up: build ## run the stack in the foreground until Ctrl-C
	@scripts/up.sh

.PHONY: soak
soak: build ## load test: the stack as make up runs it at 4× its measured capacity for SOAK_DURATION (10m); exit 1 names a missed goal
	@scripts/soak.sh

.PHONY: experiment
experiment: deps ## the study's three pipelines compared (QUICK=1 for the short run)
	@scripts/experiment.sh

.PHONY: models
models: deps ## retrain the bundled default models into models/ (≈ 100 min on 2 cores, resumable with RESUME=1; needs make data)
	@go build -o bin/hirez ./cli/cmd/hirez && bin/hirez train-defaults --out models --train-features 2200 --gan-budget 70m --sr-budget 15m $(if $(RESUME),--resume)

.PHONY: images
images: ## build the container images (lint only when no Docker engine is reachable)
	@scripts/images.sh

.PHONY: k8s
k8s: ## render a Kubernetes overlay (OVERLAY=overlays/dev|overlays/prod, relative to k8s/)
	@cd k8s && go run ./cmd/render $(or $(OVERLAY),overlays/dev)

.PHONY: k8s-validate
k8s-validate: ## build every overlay, check the policy, lint the Dockerfiles
	@cd k8s && go run ./cmd/render -check overlays/dev overlays/prod && go test -count=1 ./...

.PHONY: cuda-check
cuda-check: ## vet, build and compile the tests with -tags cuda (headers and stubs fetched into ~/.cache/hirez/cuda), PTX vs sources when nvcc is cached
	@scripts/cuda-check.sh

.PHONY: ptx
ptx: ## compile the CUDA kernels (engine/backend/cuda/kernels/*.cu) to the committed PTX (fetches nvcc 11.8 into ~/.cache/hirez/cuda)
	@scripts/ptx.sh

.PHONY: gpu-build
gpu-build: deps ## build the GPU check's binaries into gpu/ for scripts/gpu-check.sh on a GPU machine (no Go there)
	@scripts/gpu-build.sh

.PHONY: ci
ci: deps checkgenerate lint test cuda-check ## what .ci/run does
