#!/usr/bin/env bash
# gofmt + go vet on every module (passed by make), then buf lint on the API.
set -euo pipefail
unformatted=$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
for m in "$@"; do
  echo "== vet $m"
  (cd "$m" && go vet ./...)
done
if [ -f proto/buf.yaml ]; then
  echo "== buf lint"
  (cd proto && buf lint)
fi
