#!/usr/bin/env bash
# Bring the whole platform up: infrastructure, migrations, core pack, and a supervisor running the
# gateway and the four services (`--replicas worker=3,gateway=2` for more of each: docs/deploy.md).
source "$(dirname "$0")/lib.sh"
ensure_infrastructure
cd "$ROOT"
exec "$VENV/bin/attune" up --config "${ATTUNE_CONFIG:-$ROOT/nameko.yaml}" "$@"
