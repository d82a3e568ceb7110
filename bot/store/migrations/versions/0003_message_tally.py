"""message tally: stored messages counted per account and role

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

The status page counted every stored message by role on each load (a full scan of the largest
table). From here on the intake keeps the counts in ``message_tally`` in the same transaction as
the messages; the upgrade counts the existing messages once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_tally",
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("platform", "account_id", "actor_role"),
    )
    op.execute(
        "INSERT INTO message_tally (platform, account_id, actor_role, count)"
        " SELECT platform, account_id, actor_role, count(*) FROM message"
        " GROUP BY platform, account_id, actor_role"
    )


def downgrade() -> None:
    op.drop_table("message_tally")
