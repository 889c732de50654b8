#!/usr/bin/env bash
# Installs ONNX Runtime for `make bench` into .cache/ort (git-ignored) when it is
# missing or when scripts/bench/ort/package-lock.json changed: the npm package
# onnxruntime-node at the version pinned there, whose tarball carries the CPU
# libraries (libonnxruntime.so and the Node binding). `npm ci` checks every
# package against the lockfile's integrity (sha512) hashes. --ignore-scripts
# skips the package's install script, which tries to fetch GPU extras (CUDA,
# TensorRT) that the CPU benchmark does not use. Quick when all is there.
# Needs node and npm (Debian's nodejs and npm packages, installed here when root).
set -euo pipefail
cd "$(dirname "$0")/../.."
src=scripts/bench/ort
dst=.cache/ort
want=$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)
arch=$(uname -m)
case "$arch" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; esac
binding=$dst/node_modules/onnxruntime-node/bin/napi-v6/linux/$arch/onnxruntime_binding.node
if [ -f "$binding" ] && [ "$(cat "$dst/.lock.sha256" 2>/dev/null)" = "$want" ]; then
	exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		echo "ort: node and npm missing; run: sudo apt-get install -y nodejs npm" >&2
		exit 1
	fi
	echo "ort: installing apt packages nodejs npm" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
echo "ort: npm ci onnxruntime-node into $dst" >&2
rm -rf "$dst"
mkdir -p "$dst"
cp "$src/package.json" "$src/package-lock.json" "$dst/"
(cd "$dst" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
[ -f "$binding" ] || { echo "ort: $binding missing after npm ci" >&2; exit 1; }
echo "$want" > "$dst/.lock.sha256"
