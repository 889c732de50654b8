#!/usr/bin/env bash
# gofmt + go vet on every module (passed by make), buf lint on the API, and the
# check that every first-run make target installs its dependencies.
set -euo pipefail
scripts/check-targets.sh
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
