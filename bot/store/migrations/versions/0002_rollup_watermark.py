"""rollup watermark; message key led by the message id, no second index on message

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

The rollups used to hold every question; from here on they hold the questions settled by the
watermark (``sla_rollup_state``). Existing stores start at a watermark of +inf (every stored
question is in the rollups, as before); the app moves it back to the present on start.
The chat/time index on ``message`` is dropped where an earlier schema created it: nothing reads
messages that way, and it doubled the cost of every stored event. The message key's columns are
reordered (message id first: the most selective, and in-order ids append instead of writing a
page per chat at every commit); on SQLite that rebuilds the table once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = ["platform", "account_id", "chat_type", "chat_id", "message_id"]
NEW_KEY = ["message_id", "chat_id", "chat_type", "account_id", "platform"]
# "+inf" as the rollups' reports use it (handlers/reports_sla.py).
INF = datetime(2999, 1, 1, tzinfo=UTC)


def upgrade() -> None:
    state = op.create_table(
        "sla_rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    now = datetime.now(UTC)
    if op.get_context().dialect.name == "sqlite":
        # Stored as SQLAlchemy's SQLite DATETIME stores it (naive UTC text).
        op.bulk_insert(
            state,
            [
                {
                    "id": 1,
                    "watermark": INF.replace(tzinfo=None),
                    "updated_at": now.replace(tzinfo=None),
                }
            ],
        )
    else:
        op.bulk_insert(state, [{"id": 1, "watermark": INF, "updated_at": now}])
    op.execute("DROP INDEX IF EXISTS ix_message_chat_time")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint("uq_message_key", type_="unique")
        batch_op.create_unique_constraint("uq_message_key", NEW_KEY)


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint("uq_message_key", type_="unique")
        batch_op.create_unique_constraint("uq_message_key", OLD_KEY)
    op.drop_table("sla_rollup_state")
