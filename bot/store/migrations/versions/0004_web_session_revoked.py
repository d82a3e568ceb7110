"""revoked dashboard sessions

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Logging out used to delete the cookie only: a copied session token stayed valid until it expired.
Logout now records the session id here, and every process refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_session_revoked",
        sa.Column("sid", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sid"),
    )


def downgrade() -> None:
    op.drop_table("web_session_revoked")
