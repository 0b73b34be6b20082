#!/usr/bin/env bash
# Development helper while the schema is young: rebuild alembic/versions/0001 from domain.models.
# (Once a release ships, add new revisions instead.)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export ATTUNE_CONFIG="$ROOT/nameko.yaml"
url="postgresql+psycopg2://attune:attune@127.0.0.1:5432/attune_migr"
psql_super -c "drop database if exists attune_migr" -c "create database attune_migr owner attune"
rm -f alembic/versions/0001_initial_schema.py
"$PY" - "$url" <<'PYEOF'
import sys
from alembic.config import Config
from alembic import command
cfg = Config("alembic.ini"); cfg.attributes["database_url"] = sys.argv[1]
cfg.attributes["skip_logging"] = True
command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
p = "alembic/versions/0001_initial_schema.py"
s = open(p).read()
s = s.replace("    # ### end Alembic commands ###\n", "    # ### end Alembic commands ###\n    op.execute(AUDIT_APPEND_ONLY)\n", 1)
s = s.replace("def downgrade() -> None:\n", "def downgrade() -> None:\n    op.execute(\"DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log\")\n    op.execute(\"DROP FUNCTION IF EXISTS audit_log_refuse_change()\")\n", 1)
s = s.replace("\n\ndef upgrade()", '''
# The audit log is append-only: the database itself refuses UPDATE, DELETE and TRUNCATE.
AUDIT_APPEND_ONLY = """
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
"""


def upgrade()''', 1)
open(p, "w").write(s)
command.upgrade(cfg, "head")
command.check(cfg)
print("regenerated", p)
PYEOF
"$VENV/bin/ruff" format -q alembic/versions/0001_initial_schema.py || true
