#!/usr/bin/env bash
# Bring the whole platform up: infrastructure, migrations, core pack, gateway and four services.
source "$(dirname "$0")/lib.sh"
ensure_infrastructure
cd "$ROOT"
exec "$VENV/bin/attune" up --config "${ATTUNE_CONFIG:-$ROOT/nameko.yaml}" "$@"
