#!/usr/bin/env bash
# The main job (`make demo`, after `make build`): start the serving stack on free
# loopback ports — generator, two upscalers, gateway — with the bundled models,
# ask the gateway for 8 images, write 256×256 PNGs and a contact sheet to out/,
# print where they are and how long each stage took, and stop everything.
# When the optional models exist it also starts an upscaler serving the
# multi-stage GAN's Up Sampler (models/upsampler-x2-emoji.safetensors) and/or a
# generator serving a DCGAN trained at 64 px (models/dcgan64-emoji.safetensors),
# passes them to the gateway (--upsampler-target, --single-generator-target) and
# asks for 2 images with each of those pipelines, into out/multistage/ (256 px)
# and out/single/ (64 px). Without them those steps are skipped, with a message.
#
#   scripts/demo.sh        # the demo
#   scripts/demo.sh up     # the same stack in the foreground until Ctrl-C (scripts/up.sh),
#                          # supervised: a replica that exits is restarted
#                          # (scripts/supervise.sh; docs/operations.md)
#
# Either way the stack stops in order: the gateway first (its streams in flight
# finish), then the generator and upscalers, each waited for.
#
# Environment:
#   MODELS_DIR  models to serve (default: models/, the bundled ones). Per role:
#               a directory generator/ or upscaler/ of *.safetensors (the newest
#               is served and new files are swapped in while running), a file
#               generator.safetensors / upscaler.safetensors, or the bundled
#               dcgan*.safetensors / srcnn*- or espcn*.safetensors.
#   GENERATOR_MODEL, UPSCALER_MODEL  a file or directory for one role
#   UPSAMPLER_MODEL  Up Sampler for PIPELINE_MULTISTAGE_GAN
#               (default: MODELS_DIR/upsampler-x2-emoji.safetensors; skipped if absent)
#   SINGLE_MODEL     DCGAN for PIPELINE_SINGLE_DCGAN (default:
#               MODELS_DIR/dcgan64-emoji.safetensors; skipped if absent), SINGLE_SIZE
#               the side it was trained at (64)
#   OUT_DIR     where images and logs go (default: out/)
#   COUNT, SEED number of images (8) and base seed (2026)
#   BACKEND     engine backend (default: the fastest built in)
#   BIN_DIR     where the binaries are (default: bin/)
#   SHUTDOWN_TIMEOUT  seconds each server drains its RPCs after SIGTERM (10)
#   DRAIN_DELAY seconds the gateway keeps serving, NOT_SERVING, before draining (0)
#   up mode:    GATEWAY_ADDR (127.0.0.1:9000), HTTP_ADDR (127.0.0.1:8080),
#               GENERATOR_ADDR (127.0.0.1:9001), UPSCALER_ADDRS (127.0.0.1:9102,127.0.0.1:9202),
#               UPSAMPLER_ADDR and SINGLE_ADDR (free ports unless set)
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-demo}
MODELS_DIR=${MODELS_DIR:-models}
OUT_DIR=${OUT_DIR:-out}
COUNT=${COUNT:-8}
SEED=${SEED:-2026}
BIN=${BIN_DIR:-bin}
SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-10}
DRAIN_DELAY=${DRAIN_DELAY:-0}
SV_PREFIX=$MODE
# shellcheck source=scripts/supervise.sh
. scripts/supervise.sh

die() { echo "demo: $*" >&2; exit 1; }

for b in generator upscaler gateway hirez freeports; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing: run 'make build' first (make demo does)"
done
for v in SHUTDOWN_TIMEOUT DRAIN_DELAY; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v=${!v}: want whole seconds"
done

# model_path ROLE PATTERN...: the first of MODELS_DIR/ROLE/ (a directory of
# *.safetensors: the newest is served, new files are hot-swapped in),
# MODELS_DIR/ROLE.safetensors, or the first MODELS_DIR/PATTERN file (the
# bundled models are named after their preset, e.g. dcgan32-smileys.safetensors).
model_path() {
  local role=$1; shift
  if [ -d "$MODELS_DIR/$role" ] && compgen -G "$MODELS_DIR/$role/*.safetensors" >/dev/null; then
    echo "$MODELS_DIR/$role"; return
  fi
  if [ -f "$MODELS_DIR/$role.safetensors" ]; then
    echo "$MODELS_DIR/$role.safetensors"; return
  fi
  local pat f
  for pat in "$@"; do
    for f in "$MODELS_DIR"/$pat; do
      [ -f "$f" ] && { echo "$f"; return; }
    done
  done
  die "no $role model in $MODELS_DIR/: expected $role/*.safetensors, $role.safetensors or one of: $* (set MODELS_DIR, or ${role^^}_MODEL to a file)"
}
# dcgan32 first: a dcgan64 beside it is the single-DCGAN pipeline's model.
GEN_MODEL=${GENERATOR_MODEL:-$(model_path generator 'dcgan32*.safetensors' 'dcgan*.safetensors')}
UP_MODEL=${UPSCALER_MODEL:-$(model_path upscaler 'srcnn*.safetensors' 'espcn*.safetensors')}

# The optional pipelines' models: used when present, skipped (with a line
# saying so) when not, so the demo works from a clean clone either way.
UPSAMPLER_MODEL=${UPSAMPLER_MODEL:-$MODELS_DIR/upsampler-x2-emoji.safetensors}
SINGLE_MODEL=${SINGLE_MODEL:-$MODELS_DIR/dcgan64-emoji.safetensors}
SINGLE_SIZE=${SINGLE_SIZE:-64}
HAVE_UPSAMPLER=
HAVE_SINGLE=
if [ -f "$UPSAMPLER_MODEL" ]; then
  HAVE_UPSAMPLER=1
else
  echo "demo: $UPSAMPLER_MODEL not found: skipping the multi-stage GAN pipeline (no Up Sampler upscaler started)"
fi
if [ -f "$SINGLE_MODEL" ]; then
  HAVE_SINGLE=1
else
  echo "demo: $SINGLE_MODEL not found: skipping the single-DCGAN pipeline (no ${SINGLE_SIZE} px generator started)"
fi

mkdir -p "$OUT_DIR/logs"
mapfile -t P < <("$BIN/freeports" 7)
if [ "$MODE" = up ]; then
  GATEWAY_ADDR=${GATEWAY_ADDR:-127.0.0.1:9000}
  HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
  GENERATOR_ADDR=${GENERATOR_ADDR:-127.0.0.1:9001}
  UPSCALER_ADDRS=${UPSCALER_ADDRS:-127.0.0.1:9102,127.0.0.1:9202}
else
  GATEWAY_ADDR=127.0.0.1:${P[0]}
  HTTP_ADDR=127.0.0.1:${P[1]}
  GENERATOR_ADDR=127.0.0.1:${P[2]}
  UPSCALER_ADDRS=127.0.0.1:${P[3]},127.0.0.1:${P[4]}
fi
UPSAMPLER_ADDR=${UPSAMPLER_ADDR:-127.0.0.1:${P[5]}}
SINGLE_ADDR=${SINGLE_ADDR:-127.0.0.1:${P[6]}}

# Every server is stopped on the way out, the gateway first (stage 1): it
# drains its streams while the servers they need still run (stage 2). A
# server is waited for as long as it may take to drain (the gateway's HTTP
# streams drain after its gRPC ones), then killed.
trap 'code=$?; sv_stop; exit $code' EXIT
if [ "$MODE" = up ]; then
  trap 'sv_signal 130' INT
  trap 'sv_signal 143' TERM
  trap 'sv_signal 129' HUP
else
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
fi

common=(--metrics-addr "" --log-format console --shutdown-timeout "${SHUTDOWN_TIMEOUT}s")
backend=()
[ -n "${BACKEND:-}" ] && backend=(--backend "$BACKEND")
back_wait=$((SHUTDOWN_TIMEOUT + 5))
front_wait=$((DRAIN_DELAY + 2 * SHUTDOWN_TIMEOUT + 5))

start() { # start NAME BINARY ARGS...: a generator or upscaler, logging to OUT_DIR/logs/NAME.log
  local name=$1 bin=$2; shift 2
  sv_add "$name" 2 "$back_wait" "$OUT_DIR/logs/$name.log" "$BIN/$bin" "$@"
}
start generator generator --grpc-addr "$GENERATOR_ADDR" --model "$GEN_MODEL" "${backend[@]}" "${common[@]}"
i=0
for a in ${UPSCALER_ADDRS//,/ }; do
  i=$((i + 1))
  start "upscaler-$i" upscaler --grpc-addr "$a" --model "$UP_MODEL" "${backend[@]}" "${common[@]}"
done
WAIT_FOR="$GENERATOR_ADDR,$UPSCALER_ADDRS"
extra=()
if [ -n "$HAVE_UPSAMPLER" ]; then
  start upsampler upscaler --grpc-addr "$UPSAMPLER_ADDR" --model "$UPSAMPLER_MODEL" "${backend[@]}" "${common[@]}"
  extra+=(--upsampler-target "$UPSAMPLER_ADDR")
  WAIT_FOR+=",$UPSAMPLER_ADDR"
fi
if [ -n "$HAVE_SINGLE" ]; then
  start single-generator generator --grpc-addr "$SINGLE_ADDR" --model "$SINGLE_MODEL" "${backend[@]}" "${common[@]}"
  extra+=(--single-generator-target "$SINGLE_ADDR")
  WAIT_FOR+=",$SINGLE_ADDR"
fi
sv_add gateway 1 "$front_wait" "$OUT_DIR/logs/gateway.log" "$BIN/gateway" --grpc-addr "$GATEWAY_ADDR" --http-addr "$HTTP_ADDR" \
  --generator-target "$GENERATOR_ADDR" --upscaler-target "$UPSCALER_ADDRS" "${extra[@]}" "${common[@]}" --drain-delay "${DRAIN_DELAY}s"

cat <<MSG
hirez stack (logs in $OUT_DIR/logs/):
  gateway    gRPC $GATEWAY_ADDR   HTTP http://$HTTP_ADDR
  generator  $GENERATOR_ADDR   model $GEN_MODEL
  upscalers  $UPSCALER_ADDRS   model $UP_MODEL
MSG
if [ -n "$HAVE_UPSAMPLER" ]; then echo "  upsampler  $UPSAMPLER_ADDR   model $UPSAMPLER_MODEL   (PIPELINE_MULTISTAGE_GAN)"; fi
if [ -n "$HAVE_SINGLE" ]; then echo "  single     $SINGLE_ADDR   model $SINGLE_MODEL   (PIPELINE_SINGLE_DCGAN at $SINGLE_SIZE px)"; fi

if [ "$MODE" = up ]; then
  # The health wait runs beside the supervision, so that a replica failing
  # at start-up is restarted (or given up) rather than waited for.
  ready() {
    if [ "$1" != 0 ]; then
      sv_log "the stack did not become healthy; see $OUT_DIR/logs/"
      SV_STOP=unhealthy SV_CODE=1
      return
    fi
    echo "try: curl -s -XPOST http://$HTTP_ADDR/v1/images:generate -d '{\"count\": 2}' | head -c 300"
    echo "Ctrl-C stops the stack (gateway first, then the generator and upscalers)."
  }
  sv_hook ready "$BIN/hirez" generate --gateway "$GATEWAY_ADDR" --wait-for "$WAIT_FOR" --count 0
  sv_run
  exit "$SV_CODE"
fi

"$BIN/hirez" generate --gateway "$GATEWAY_ADDR" --wait-for "$WAIT_FOR" \
  --count "$COUNT" --seed "$SEED" --out "$OUT_DIR" || { echo "demo failed; server logs are in $OUT_DIR/logs/" >&2; exit 1; }
if [ -n "$HAVE_UPSAMPLER" ]; then
  echo "demo: multi-stage GAN (DCGAN, then the Up Sampler ×2 to 256 px):"
  "$BIN/hirez" generate --gateway "$GATEWAY_ADDR" --pipeline multistage --size 256 \
    --count 2 --seed "$SEED" --out "$OUT_DIR/multistage" || { echo "demo: the multi-stage GAN failed; server logs are in $OUT_DIR/logs/" >&2; exit 1; }
fi
if [ -n "$HAVE_SINGLE" ]; then
  echo "demo: single DCGAN at $SINGLE_SIZE px:"
  "$BIN/hirez" generate --gateway "$GATEWAY_ADDR" --pipeline single --size "$SINGLE_SIZE" \
    --count 2 --seed "$SEED" --out "$OUT_DIR/single" || { echo "demo: the single DCGAN failed; server logs are in $OUT_DIR/logs/" >&2; exit 1; }
fi
echo "demo: done; images are in $OUT_DIR/"
