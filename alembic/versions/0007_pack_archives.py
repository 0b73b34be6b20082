"""Pack content in PostgreSQL (issue 16: hosts that share no disk)

`pack_archives` holds each pack's .tar.gz once, named by its sha256; `packs.archive_sha256`
says which one a pack runs. Workers and sensor hosts fetch it on first use into their own
run dir's cache (domain/pack_store.py). Packs registered before this revision have no archive
and keep running from `source_path` until they are registered or reloaded again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pack_archives",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", postgresql.BYTEA, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("sha256", name="pk_pack_archives"),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="ck_pack_archives_sha256"),
    )
    op.add_column("packs", sa.Column(
        "archive_sha256", sa.String(64),
        sa.ForeignKey("pack_archives.sha256", name="fk_packs_archive_sha256_pack_archives"), nullable=True))
    op.create_index("ix_packs_archive_sha256", "packs", ["archive_sha256"])


def downgrade() -> None:
    op.drop_index("ix_packs_archive_sha256", "packs")
    op.drop_column("packs", "archive_sha256")
    op.drop_table("pack_archives")
