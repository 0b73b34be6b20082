"""The last pack environment build's log, end and length (issue 19: visible pack builds)

`env_log` keeps the installer's output (bounded by the worker) whatever the outcome, not only
on failure (`env_error`); `env_built_at` and `env_build_seconds` say when that build ended and
how long it took. GET /api/v1/packs/<id>/environment serves them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("packs", sa.Column("env_log", sa.Text))
    op.add_column("packs", sa.Column("env_built_at", sa.DateTime(timezone=True)))
    op.add_column("packs", sa.Column("env_build_seconds", sa.Float))


def downgrade() -> None:
    op.drop_column("packs", "env_build_seconds")
    op.drop_column("packs", "env_built_at")
    op.drop_column("packs", "env_log")
