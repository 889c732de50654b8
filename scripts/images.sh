#!/usr/bin/env bash
# Builds the hirez container images listed in build/docker/images.txt from
# build/docker/Dockerfile, after linting the Dockerfile and the list (the k8s
# module's TestDockerfiles). Without a reachable Docker engine it lints, says so
# and exits 0.
#
#   scripts/images.sh                      # every image, every target
#   REGISTRY=registry.example/hirez TAG=v0.1.0 PUSH=1 scripts/images.sh
#   TARGETS=cpu,static scripts/images.sh   # skip the CUDA builds
#
# Names: <REGISTRY>/<image>:<TAG> for the cpu and static targets,
# <REGISTRY>/<image>-cuda:<TAG> for cuda — what the k8s overlays' images: expect.
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY=${REGISTRY:-hirez}
TAG=${TAG:-v0.1.0}
TARGETS=${TARGETS:-cpu,cuda,static}
PUSH=${PUSH:-0}
DOCKER=${DOCKER:-docker}

if [ "$TAG" = latest ] || [ -z "$TAG" ]; then
  echo "images: TAG must be a pinned version, not '${TAG:-<empty>}'" >&2
  exit 1
fi

echo "== images: lint build/docker"
(cd k8s && go test -count=1 -run '^TestDockerfiles$' .)

if ! command -v "$DOCKER" >/dev/null 2>&1 || ! "$DOCKER" info >/dev/null 2>&1; then
  echo "images: no Docker engine is reachable here ('$DOCKER info' failed); Dockerfiles linted, nothing built."
  exit 0
fi

export DOCKER_BUILDKIT=1
built=()
while read -r name module binary targets; do
  for target in ${targets//,/ }; do
    case ",$TARGETS," in *",$target,"*) ;; *) continue ;; esac
    repo="$REGISTRY/$name"
    [ "$target" = cuda ] && repo="$repo-cuda"
    echo "== images: $repo:$TAG (target $target)"
    "$DOCKER" build -f build/docker/Dockerfile --target "$target" \
      --build-arg MODULE="$module" --build-arg BINARY="$binary" \
      -t "$repo:$TAG" .
    built+=("$repo:$TAG")
  done
done < <(grep -vE '^\s*(#|$)' build/docker/images.txt)

if [ "$PUSH" = 1 ]; then
  for ref in "${built[@]}"; do
    "$DOCKER" push "$ref"
  done
fi
printf 'images: built %s\n' "${built[@]}"
