#!/usr/bin/env bash
# Stop every process `scripts/up.sh` started (SIGTERM, then SIGKILL after a grace period).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
exec "$VENV/bin/attune" down --config "${ATTUNE_CONFIG:-$ROOT/nameko.yaml}" "$@"
