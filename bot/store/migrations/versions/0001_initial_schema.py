"""initial schema

Revision ID: 0001
Revises:
Create Date: pre-release (regenerated)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "account_id", name="uq_account"),
    )
    op.create_table(
        "chat",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("chat_type", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("monitored", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "chat_type", "chat_id", name="uq_chat_key"),
    )
    op.create_table(
        "customer",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("guide_id", sa.String(length=64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_purchase_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "external_id", name="uq_customer_key"),
    )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_guide_id"), ["guide_id"], unique=False)

    op.create_table(
        "group_owner",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("operator_id", sa.String(length=64), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("group_owner", schema=None) as batch_op:
        batch_op.create_index("ix_group_owner_chat", ["platform", "chat_id"], unique=False)

    op.create_table(
        "message",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("chat_type", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("sender_name", sa.String(length=255), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("operator_id", sa.String(length=64), nullable=True),
        sa.Column("is_self", sa.Boolean(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reply_to_message_id", sa.String(length=128), nullable=True),
        sa.Column("mention_user_ids", sa.JSON(), nullable=False),
        sa.Column("mention_all", sa.Boolean(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recalled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "platform", "account_id", "chat_type", "chat_id", "message_id", name="uq_message_key"
        ),
    )
    op.create_table(
        "operator",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("supervisor_id", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=128), nullable=False),
        sa.Column("wecom_user_id", sa.String(length=128), nullable=False),
        sa.Column("is_bot", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("operator", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_operator_store"), ["store"], unique=False)

    op.create_table(
        "operator_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("operator_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "user_id", name="uq_identity"),
    )
    with op.batch_alter_table("operator_identity", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_operator_identity_operator_id"), ["operator_id"], unique=False
        )

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("recipient_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_key"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["status", "due_at"], unique=False)

    op.create_table(
        "question",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("public_id", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("asker_id", sa.String(length=128), nullable=False),
        sa.Column("open_message_id", sa.String(length=128), nullable=False),
        sa.Column("message_ids", sa.JSON(), nullable=False),
        sa.Column("snippet", sa.String(length=255), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_epoch", sa.Float(), nullable=False),
        sa.Column("opened_bepoch", sa.Float(), nullable=False),
        sa.Column("settle_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("local_date", sa.String(length=10), nullable=False),
        sa.Column("last_customer_msg_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detector_reason", sa.String(length=32), nullable=False),
        sa.Column("detect_score", sa.Float(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("calendar_version", sa.Integer(), nullable=False),
        sa.Column("owner_ids", sa.JSON(), nullable=False),
        sa.Column("frt_target_s", sa.Float(), nullable=False),
        sa.Column("frt_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("frt_due_calendar_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("backlog_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_responder_id", sa.String(length=64), nullable=True),
        sa.Column("first_response_message_id", sa.String(length=128), nullable=True),
        sa.Column("link_method", sa.String(length=32), nullable=True),
        sa.Column("link_confidence", sa.Float(), nullable=True),
        sa.Column("frt_business_s", sa.Float(), nullable=True),
        sa.Column("frt_calendar_s", sa.Float(), nullable=True),
        sa.Column("strict_first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("strict_first_responder_id", sa.String(length=64), nullable=True),
        sa.Column("strict_frt_business_s", sa.Float(), nullable=True),
        sa.Column("strict_frt_calendar_s", sa.Float(), nullable=True),
        sa.Column("holding", sa.Boolean(), nullable=False),
        sa.Column("followup_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("followup_done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("followup_breached", sa.Boolean(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolver_id", sa.String(length=64), nullable=True),
        sa.Column("resolution_method", sa.String(length=32), nullable=True),
        sa.Column("resolution_business_s", sa.Float(), nullable=True),
        sa.Column("resolution_calendar_s", sa.Float(), nullable=True),
        sa.Column("bot_resolved", sa.Boolean(), nullable=False),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("last_reopened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("peer_answered", sa.Boolean(), nullable=False),
        sa.Column("bot_touch", sa.Boolean(), nullable=False),
        sa.Column("bot_message_ids", sa.JSON(), nullable=False),
        sa.Column("dismissed_reason", sa.String(length=500), nullable=True),
        sa.Column("dismissed_by", sa.String(length=64), nullable=True),
        sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("alert_levels_sent", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id", name="uq_question_public_id"),
    )
    with op.batch_alter_table("question", schema=None) as batch_op:
        batch_op.create_index(
            "ix_question_chat_status", ["platform", "chat_id", "status"], unique=False
        )
        batch_op.create_index("ix_question_day", ["local_date"], unique=False)
        batch_op.create_index("ix_question_opened", ["opened_at"], unique=False)
        batch_op.create_index(
            "ix_question_responder", ["first_responder_id", "opened_at"], unique=False
        )
        batch_op.create_index("ix_question_settle", ["settle_at"], unique=False)
        batch_op.create_index(
            "ix_question_status_due", ["status", "frt_due_at", "bot_resolved"], unique=False
        )
        batch_op.create_index(
            "ix_question_status_due_cal",
            ["status", "frt_due_calendar_at", "bot_resolved"],
            unique=False,
        )

    op.create_table(
        "response",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("question_id", sa.BigInteger(), nullable=False),
        sa.Column("chat", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("responder_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("link_method", sa.String(length=32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("counts_for_sla", sa.Boolean(), nullable=False),
        sa.Column("holding", sa.Boolean(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("question_id", "chat", "message_id", name="uq_response_message"),
    )
    with op.batch_alter_table("response", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_response_question_id"), ["question_id"], unique=False)

    op.create_table(
        "sla_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("question_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sla_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sla_event_question_id"), ["question_id"], unique=False
        )

    op.create_table(
        "sla_rollup",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("local_date", sa.String(length=10), nullable=False),
        sa.Column("dim", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("variant", sa.String(length=20), nullable=False),
        sa.Column("unanswered", sa.Integer(), nullable=False),
        sa.Column("counts", sa.LargeBinary(), nullable=False),
        sa.Column("frt", sa.LargeBinary(), nullable=False),
        sa.Column("res", sa.LargeBinary(), nullable=False),
        sa.Column("cens", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("local_date", "dim", "key", "variant", name="uq_sla_rollup_key"),
    )
    with op.batch_alter_table("sla_rollup", schema=None) as batch_op:
        batch_op.create_index("ix_sla_rollup_read", ["variant", "dim", "local_date"], unique=False)

    op.create_table(
        "sla_rollup_day",
        sa.Column("local_date", sa.String(length=10), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.Column("rebuilt_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("local_date"),
    )
    op.create_table(
        "task_completion",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "source", "ref", name="uq_completion_ref"),
    )
    with op.batch_alter_table("task_completion", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_completion_task_id"), ["task_id"], unique=False)

    op.create_table(
        "task_instance",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("guide_id", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=128), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("target_key", sa.String(length=128), nullable=False),
        sa.Column("quota", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("plan_version", sa.String(length=255), nullable=False),
        sa.Column("touch_kind", sa.String(length=16), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("miss_reason", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("guide_id", "step", "local_date", "target_key", name="uq_task_key"),
    )
    with op.batch_alter_table("task_instance", schema=None) as batch_op:
        batch_op.create_index("ix_task_date", ["local_date", "guide_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task_instance", schema=None) as batch_op:
        batch_op.drop_index("ix_task_date")

    op.drop_table("task_instance")
    with op.batch_alter_table("task_completion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_completion_task_id"))

    op.drop_table("task_completion")
    op.drop_table("sla_rollup_day")
    with op.batch_alter_table("sla_rollup", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_rollup_read")

    op.drop_table("sla_rollup")
    with op.batch_alter_table("sla_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_event_question_id"))

    op.drop_table("sla_event")
    with op.batch_alter_table("response", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_response_question_id"))

    op.drop_table("response")
    with op.batch_alter_table("question", schema=None) as batch_op:
        batch_op.drop_index("ix_question_status_due_cal")
        batch_op.drop_index("ix_question_status_due")
        batch_op.drop_index("ix_question_settle")
        batch_op.drop_index("ix_question_responder")
        batch_op.drop_index("ix_question_opened")
        batch_op.drop_index("ix_question_day")
        batch_op.drop_index("ix_question_chat_status")

    op.drop_table("question")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    with op.batch_alter_table("operator_identity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operator_identity_operator_id"))

    op.drop_table("operator_identity")
    with op.batch_alter_table("operator", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operator_store"))

    op.drop_table("operator")
    op.drop_table("message")
    with op.batch_alter_table("group_owner", schema=None) as batch_op:
        batch_op.drop_index("ix_group_owner_chat")

    op.drop_table("group_owner")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_guide_id"))

    op.drop_table("customer")
    op.drop_table("chat")
    op.drop_table("account_state")
