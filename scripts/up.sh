#!/usr/bin/env bash
# Runs the serving stack (generator, two upscalers, gateway) in the foreground on
# the ports of docs/operations.md until Ctrl-C. See scripts/demo.sh for settings.
exec "$(dirname "$0")/demo.sh" up "$@"
