#!/usr/bin/env bash
# Fails when committed generated code or go.work drifted from their sources,
# or when the API breaks compatibility with main:
#   1. regenerates proto/ (scripts/generate.sh) and fails if that changed any
#      file under proto/ or go.work (on a clean clone: any `git status` drift);
#   2. runs `make go-work` and fails if its module list differs from go.work;
#   3. runs `buf breaking` (FILE rules) against main's proto/, skipped while
#      main has no proto/buf.yaml yet. BREAKING_AGAINST=<git ref> compares
#      with another ref; BREAKING_AGAINST=none skips the check.
set -euo pipefail
cd "$(dirname "$0")/.."

paths=(proto go.work)
fail=0

# Content of every tracked or untracked (not ignored) file under $paths, so a
# tree with uncommitted work is checked too: generation must reproduce it.
snapshot() {
  git ls-files -z --cached --others --exclude-standard -- "${paths[@]}" |
    xargs -0 -r sha256sum 2>/dev/null | sort -k2 || true
}

# --- 1. generated code -------------------------------------------------------
before=$(mktemp); after=$(mktemp); workdir=$(mktemp -d)
trap 'rm -rf "$before" "$after" "$workdir"' EXIT
snapshot > "$before"
scripts/generate.sh
snapshot > "$after"
if ! cmp -s "$before" "$after"; then
  echo "checkgenerate: generated code is out of date with proto/*.proto, buf.gen.yaml or go.mod." >&2
  echo "checkgenerate: run 'make generate' and commit the result. Files that changed:" >&2
  { diff "$before" "$after" || true; } | awk '/^[<>]/ {print "  " $3}' | sort -u >&2
  git --no-pager diff --stat -- "${paths[@]}" >&2 || true
  git status --porcelain -- "${paths[@]}" >&2
  fail=1
elif [ -n "$(git status --porcelain -- "${paths[@]}")" ]; then
  # Not a failure by itself: during development the tree is dirty. On a clean
  # clone (CI) any change here was caused by generation and failed above.
  echo "checkgenerate: note: uncommitted changes under ${paths[*]} (generation reproduces them):"
  git status --porcelain -- "${paths[@]}" | sed 's/^/  /'
fi

# --- 2. go.work --------------------------------------------------------------
# `make go-work` rewrites go.work and deletes go.work.sum in place: keep copies,
# compare the `use` lists (the `go` line follows the local toolchain), restore.
cp go.work "$workdir/go.work"
if [ -f go.work.sum ]; then cp go.work.sum "$workdir/go.work.sum"; fi
restore_work() {
  cp "$workdir/go.work" go.work
  if [ -f "$workdir/go.work.sum" ]; then cp "$workdir/go.work.sum" go.work.sum; else rm -f go.work.sum; fi
}
# Put the committed files back even if `make go-work` fails half-way.
trap 'restore_work; rm -rf "$before" "$after" "$workdir"' EXIT
make -s go-work >/dev/null
uses() { go work edit -json "$1" | sed -n 's/.*"DiskPath": "\(.*\)".*/\1/p' | sort; }
if ! diff -u <(uses "$workdir/go.work") <(uses go.work) > "$workdir/work.diff"; then
  echo "checkgenerate: go.work is not what 'make go-work' generates (- committed, + generated):" >&2
  sed -n '3,$p' "$workdir/work.diff" >&2
  echo "checkgenerate: run 'make go-work' and commit go.work." >&2
  fail=1
fi
restore_work
trap 'rm -rf "$before" "$after" "$workdir"' EXIT

# --- 3. breaking changes -----------------------------------------------------
against=${BREAKING_AGAINST:-}
if [ -z "$against" ]; then
  for ref in main origin/main; do
    if git rev-parse -q --verify "$ref^{commit}" >/dev/null; then against=$ref; break; fi
  done
fi
if [ "$against" = none ]; then
  echo "checkgenerate: breaking check skipped (BREAKING_AGAINST=none)"
elif [ -z "$against" ]; then
  echo "checkgenerate: breaking check skipped (no main branch in this clone)"
elif ! git cat-file -e "$against:proto/buf.yaml" 2>/dev/null; then
  echo "checkgenerate: breaking check skipped ($against has no proto/buf.yaml yet)"
else
  commit=$(git rev-parse "$against^{commit}")
  gitdir=$(cd "$(git rev-parse --git-common-dir)" && pwd)
  echo "checkgenerate: buf breaking against $against ($commit)"
  if ! (cd proto && PATH="$PWD/../.cache/bin:$PATH" buf breaking --against "$gitdir#ref=$commit,subdir=proto"); then
    echo "checkgenerate: the API breaks compatibility with $against (rules: FILE, proto/buf.yaml)." >&2
    fail=1
  fi
fi

if [ "$fail" -ne 0 ]; then exit 1; fi
echo "checkgenerate: ok"
