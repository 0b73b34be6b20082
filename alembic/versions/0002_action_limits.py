"""actions.limits: an action's own sandbox limits (issue 14)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("actions", sa.Column("limits", postgresql.JSONB(astext_type=sa.Text()),
                                       nullable=True))


def downgrade() -> None:
    op.drop_column("actions", "limits")
