#!/usr/bin/env bash
# The full test suite: lint (ruff, lint-imports, mypy), unit, integration and e2e (the e2e
# fixtures start the platform on config.e2e.yaml through the same `attune up` the README uses,
# and stop it afterwards).
source "$(dirname "$0")/lib.sh"
ensure_infrastructure
ensure_browser
cd "$ROOT"
unset ATTUNE_DATABASE_URL ATTUNE_AMQP_URI ATTUNE_API_PORT ATTUNE_RUN_DIR || true
say "ruff"
"$VENV/bin/ruff" check nameko_services gateway runners client tests bench alembic
say "lint-imports (the layers: [tool.importlinter] in pyproject.toml)"
"$VENV/bin/lint-imports"
say "mypy (nameko_services/domain, runners, client: [tool.mypy] in pyproject.toml)"
"$VENV/bin/mypy"
say "pytest (integration tests on an empty vhost ${ATTUNE_TEST_VHOST:-attune_test})"
renew_vhost "${ATTUNE_TEST_VHOST:-attune_test}"
exec "$PY" -m pytest "${@:-tests}"
