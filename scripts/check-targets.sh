#!/usr/bin/env bash
# Every target a user runs first on a fresh clone must install what it needs
# itself: `make -n` (print, run nothing) of each must reach scripts/deps.sh, and
# before anything that compiles cgo or runs a binary. A new target that builds
# without deps fails here rather than on a user's machine ("dnnl.h: No such
# file or directory").
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for target in demo up soak build bench experiment data models ci; do
  plan=$(make -n "$target" 2>/dev/null | grep -nE 'scripts/[a-z-]+\.sh|go (build|run|test)' || true)
  first=$(head -n1 <<<"$plan")
  if [[ "$first" != *scripts/deps.sh* ]]; then
    echo "check-targets: 'make $target' does not run scripts/deps.sh first; its plan starts: ${first:-nothing}" >&2
    status=1
  fi
done
[ $status = 0 ] && echo "check-targets: demo up soak build bench experiment data models ci all run deps first"
exit $status
