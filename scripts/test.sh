#!/usr/bin/env bash
# Runs every module's tests with the race detector. Modules are passed by make.
set -euo pipefail
status=0
for m in "$@"; do
  echo "== test $m"
  (cd "$m" && go test -race -count=1 ./...) || status=1
done
exit $status
