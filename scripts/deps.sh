#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test hirez:
#   - apt packages listed in scripts/apt-packages.txt, plus those in any list
#     file named as an argument (bench and fixture scripts pass their own), only
#     when root; otherwise it prints the apt-get line to run,
#   - Go tools listed in scripts/go-tools.txt at pinned versions into .cache/bin.
# Idempotent: when everything is present it only checks and returns.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for p in $(cat scripts/apt-packages.txt "$@" | grep -vE '^\s*(#|$)' | awk '{print $1}'); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "deps: missing apt packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

gobin="$PWD/.cache/bin"
mkdir -p "$gobin"
# Each line: <binary name> <module path>@<version>. A stamp file per tool records the
# version installed, so a version bump reinstalls and an unchanged list costs nothing.
while read -r name pkg; do
  stamp="$gobin/.$name.version"
  if [ -x "$gobin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pkg" ]; then
    continue
  fi
  echo "deps: go install $pkg"
  GOBIN="$gobin" GOWORK=off go install "$pkg"
  echo "$pkg" > "$stamp"
done < <(grep -vE '^\s*(#|$)' scripts/go-tools.txt)
echo "deps: ok"
