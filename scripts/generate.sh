#!/usr/bin/env bash
# Regenerates the committed protobuf/gRPC Go code in proto/hirez/v1 from the
# .proto files, with the plugin versions pinned in scripts/go-tools.txt
# (installed into .cache/bin by `make deps`), then tidies proto/go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."

gobin="$PWD/.cache/bin"
# Refuse to run with a missing or differently pinned tool: a plugin from
# elsewhere on PATH would make output that differs from the committed code.
for tool in buf protoc-gen-go protoc-gen-go-grpc; do
  want=$(awk -v n="$tool" '$1 == n {print $2}' scripts/go-tools.txt)
  have=$(cat "$gobin/.$tool.version" 2>/dev/null || true)
  if [ -z "$want" ]; then
    echo "generate: $tool is not pinned in scripts/go-tools.txt" >&2; exit 1
  fi
  if [ ! -x "$gobin/$tool" ] || [ "$have" != "$want" ]; then
    echo "generate: $tool $want is not installed in .cache/bin; run: make deps" >&2; exit 1
  fi
done
export PATH="$gobin:$PATH"

cd proto
# Delete generated Go first so a removed .proto leaves no orphan behind; the
# hand-written Go (limits.go, doc.go, tests) is not *.pb.go and stays.
find hirez -name '*.pb.go' -delete
buf generate
go mod tidy
echo "generate: proto/hirez/v1 regenerated"
