#!/usr/bin/env bash
# Runs the serving stack (generator, two upscalers, gateway) in the foreground on
# the ports of docs/operations.md until Ctrl-C, restarting a server that exits
# and stopping the gateway before the servers it calls (scripts/supervise.sh;
# docs/operations.md, "Running the stack locally"); with models/upsampler-x2-emoji.safetensors
# and/or models/dcgan64-emoji.safetensors present, also an Up Sampler upscaler
# and/or a 64 px generator on free ports, passed to the gateway for the
# multi-stage GAN and single-DCGAN pipelines (skipped, with a message, when
# absent). See scripts/demo.sh for settings.
exec "$(dirname "$0")/demo.sh" up "$@"
