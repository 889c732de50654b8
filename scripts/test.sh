#!/usr/bin/env bash
# Runs every module's tests with the race detector, then every Go fuzz target
# (func FuzzXxx in a _test.go file, found rather than listed) for FUZZTIME each
# (default 3s; 0 skips them: their seed corpora ran as tests already). Modules
# are passed by make. A crasher fails the run and is written to the package's
# testdata/fuzz/FuzzXxx/: fix the bug and commit the file as its regression
# seed (docs/operations.md, "Fuzzing").
set -euo pipefail
status=0
for m in "$@"; do
  echo "== test $m"
  (cd "$m" && go test -race -count=1 ./...) || status=1
done

fuzztime=${FUZZTIME:-3s}
[ "$fuzztime" = 0 ] && exit $status
for m in "$@"; do
  # go test -fuzz takes one target of one package at a time.
  while IFS=: read -r file fn; do
    pkg=./$(dirname "${file#"$m"/}")
    name=${fn#func }
    echo "== fuzz $m $pkg $name ($fuzztime)"
    (cd "$m" && go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$pkg") || status=1
  done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' "$m" | sort)
done
exit $status
