"""message handled flag: a crash between the intake's two transactions loses nothing

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

The intake stores a batch's messages in one transaction and commits the handlers' effects
(questions, SOP evidence) in a second. A process killed between the two lost those effects: the
messages were stored, so a re-delivery or backfill skipped them as duplicates. New messages are
now stored with ``handled = false`` and the second transaction sets it; a restart (and a periodic
tick on PostgreSQL) replays the rows still unhandled. Existing rows count as handled.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("handled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_index(
        "ix_message_unhandled",
        "message",
        ["id"],
        sqlite_where=sa.text("NOT handled"),
        postgresql_where=sa.text("NOT handled"),
    )


def downgrade() -> None:
    op.drop_index("ix_message_unhandled", table_name="message")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("handled")
