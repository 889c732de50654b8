#!/usr/bin/env bash
# Builds every binary (each module's cmd/<name>) into bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
for main in $(find . -path ./data -prune -o -path '*/cmd/*/main.go' -print | sort); do
  dir=$(dirname "$main")                 # ./services/generator/cmd/generator
  mod=${dir%%/cmd/*}                     # ./services/generator
  name=$(basename "$dir")                # generator
  [ -f "$mod/go.mod" ] || continue       # cmd inside a package tree of another module
  echo "build bin/$name"
  (cd "$mod" && go build -trimpath -o "$OLDPWD/bin/$name" "./cmd/$name")
done
