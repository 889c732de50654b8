#!/usr/bin/env bash
# Fetches what the cuda build tag needs on a machine without a GPU into a cache
# outside the work tree (CUDA_CACHE, default ~/.cache/hirez/cuda, beside Go's
# build cache, so a fresh clone on the same machine reuses it: the extraction
# alone takes over a minute), from Debian's non-free component, which this script
# enables privately (a copy of the apt sources with non-free added, and its own
# lists and cache): nothing is installed system-wide.
#
#   scripts/cuda-sdk.sh          headers (usr/include) and link stubs (libcuda.so)
#                                from nvidia-cuda-dev: enough for go vet, go build
#                                and go test -c with -tags cuda
#   scripts/cuda-sdk.sh nvcc     also nvcc 11.8 (nvidia-cuda-toolkit), for make ptx
#
# Prints shell assignments (CUDA_SDK=…, and NVCC=… with nvcc) for the caller to
# eval. The .debs are pinned by version and sha256; once extracted, a run only
# reads stamps (no network).
set -euo pipefail
cd "$(dirname "$0")/.."

version=11.8.89~11.8.0-5~deb12u1
dev_sha=dc63bf2fb94aaaf903e9bad0c35f631266077d016b34329ec7af456bd7fed5ec
toolkit_sha=d1156026e704fe0368b6295db06224ed00a727966fb13454f34e3f3102db0457

root=${CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hirez/cuda}/$version
log() { echo "cuda-sdk: $*" >&2; }

work=""
apt_opts=()
cleanup() { if [ -n "$work" ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

# apt_init makes the private apt configuration (once).
apt_init() {
  [ -n "$work" ] && return
  local src=/etc/apt/sources.list.d/debian.sources
  if [ ! -f "$src" ]; then
    log "no $src: fetching the CUDA packages needs a Debian bookworm system with deb822 sources"
    exit 1
  fi
  work=$(mktemp -d)
  mkdir -p "$work/sources" "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
  sed -E 's/^Components:.*/Components: main contrib non-free/' "$src" > "$work/sources/debian.sources"
  apt_opts=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$work/sources"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1)
  log "apt-get update (private lists with non-free)"
  apt-get "${apt_opts[@]}" update -qq >&2
}

# fetch <package> <sha256>: downloads the pinned .deb, checks it, prints its path.
fetch() {
  apt_init
  log "apt-get download $1=$version"
  if ! (cd "$work/debs" && apt-get "${apt_opts[@]}" download "$1=$version" >/dev/null 2>"$work/err"); then
    cat "$work/err" >&2
    log "could not download $1=$version (is the pin still in the archive?)"
    exit 1
  fi
  local deb
  deb=$(ls "$work/debs/$1"_*.deb)
  if ! echo "$2  $deb" | sha256sum -c --quiet - >&2; then
    log "$deb: sha256 differs from the pin $2"
    exit 1
  fi
  echo "$deb"
}

if [ "$(cat "$root/dev.ok" 2>/dev/null)" != "$dev_sha" ]; then
  deb=$(fetch nvidia-cuda-dev "$dev_sha")
  log "extracting usr/include and the stubs (about a minute)"
  rm -rf "$root/dev" && mkdir -p "$root/dev"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$root/dev" ./usr/include ./usr/lib/x86_64-linux-gnu/stubs
  rm -f "$deb"
  echo "$dev_sha" > "$root/dev.ok"
fi
echo "CUDA_SDK=$root/dev/usr"

if [ "${1:-}" = nvcc ]; then
  bin=$root/toolkit/usr/lib/nvidia-cuda-toolkit/bin
  if [ "$(cat "$root/toolkit.ok" 2>/dev/null)" != "$toolkit_sha" ]; then
    deb=$(fetch nvidia-cuda-toolkit "$toolkit_sha")
    log "extracting nvcc"
    rm -rf "$root/toolkit" && mkdir -p "$root/toolkit"
    dpkg-deb -x "$deb" "$root/toolkit"
    rm -f "$deb"
    # Debian's nvcc reads nvcc.profile beside its binary: point it into the cache.
    cat > "$bin/nvcc.profile" <<PROFILE
TOP = \$(_HERE_)/..
NVVMIR_LIBRARY_DIR = \$(TOP)/libdevice
PATH += \$(TOP)/bin:$root/toolkit/usr/bin:
INCLUDES += "-I$root/dev/usr/include" \$(_SPACE_)
PROFILE
    echo "$toolkit_sha" > "$root/toolkit.ok"
  fi
  echo "NVCC=$bin/nvcc"
fi
