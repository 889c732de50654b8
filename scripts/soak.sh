#!/usr/bin/env bash
# The load test (`make soak`, after `make build`): starts the serving stack as
# `make up` does (scripts/up.sh: generator, two upscalers, gateway, supervised)
# on free loopback ports, waits for it to be healthy, runs bin/soak against it
# (capacity with one client, then 4× that from 32 clients for SOAK_DURATION,
# checking the goals; docs/serving.md, "Soak"), stops the stack in order and
# exits with soak's status: 0 when every goal held, 1 when one was missed.
#
# Environment:
#   SOAK_DURATION  how long to drive the load (default 10m; a Go duration: 90s, 2m, 1h30m)
#   SOAK_FLAGS     more flags for bin/soak (e.g. "--factor 2 --clients 64"; bin/soak -h lists them)
#   OUT_DIR        logs of the stack (default out/soak/; the stack's own output in up.log)
#   BIN_DIR, MODELS_DIR, BACKEND, ...  as for scripts/up.sh (scripts/demo.sh lists them)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN_DIR:-bin}
SOAK_DURATION=${SOAK_DURATION:-10m}
export OUT_DIR=${OUT_DIR:-out/soak}

die() { echo "soak: $*" >&2; exit 2; }
[[ $SOAK_DURATION =~ ^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$ ]] ||
  die "SOAK_DURATION=$SOAK_DURATION: want a duration such as 10m, 90s or 1h30m"
for b in soak freeports; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing: run 'make build' first (make soak does)"
done

mapfile -t P < <("$BIN/freeports" 5)
export GATEWAY_ADDR=127.0.0.1:${P[0]} HTTP_ADDR=127.0.0.1:${P[1]} GENERATOR_ADDR=127.0.0.1:${P[2]}
export UPSCALER_ADDRS=127.0.0.1:${P[3]},127.0.0.1:${P[4]}
mkdir -p "$OUT_DIR"
log=$OUT_DIR/up.log
# Its own session, so that a Ctrl-C here reaches up.sh once, through the trap.
setsid scripts/up.sh >"$log" 2>&1 &
up=$!
# The stack stops in up.sh's order (gateway first) however this script ends.
trap 'kill -TERM "$up" 2>/dev/null; wait "$up" 2>/dev/null || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "soak: starting the stack (scripts/up.sh, output in $log)"
until grep -q 'Ctrl-C stops the stack' "$log"; do
  if ! kill -0 "$up" 2>/dev/null; then
    tail -n 20 "$log" >&2
    echo "soak: the stack did not start; see $log and $OUT_DIR/logs/" >&2
    exit 1
  fi
  sleep 0.5
done

# One --proc per server, by the pid of its latest "started" line.
procs=()
while read -r name pid; do
  procs+=(--proc "$name=$pid")
done < <(sed -nE 's/^up: ([a-z0-9-]+) started \(pid ([0-9]+).*/\1 \2/p' "$log" | awk '{pid[$1] = $2} END {for (n in pid) print n, pid[n]}' | sort)

status=0
# shellcheck disable=SC2086 # SOAK_FLAGS is a list of flags
"$BIN/soak" --gateway "$GATEWAY_ADDR" --duration "$SOAK_DURATION" --k8s k8s/base "${procs[@]}" ${SOAK_FLAGS:-} || status=$?
echo "soak: stopping the stack"
exit $status
