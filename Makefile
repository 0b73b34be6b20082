# Thin wrappers: the scripts do the work, so the commands also run where make is missing.
.PHONY: up down test lint
up:
	./scripts/up.sh
down:
	./scripts/down.sh
test:
	./scripts/test.sh
lint:
	.venv/bin/ruff check nameko_services gateway runners client tests bench alembic
