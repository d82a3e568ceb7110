"""SQLModel tables, and nothing else. Repos map rows to ``sop`` values.

Every timestamp column is ``UTCDateTime``: stored as UTC, returned aware, on SQLite and
PostgreSQL alike. Natural keys carry unique constraints so every write path can be idempotent.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
    true,
)
from sqlmodel import Column, Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime written to the store; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _ts(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json(default: Any = None) -> Any:
    return Field(default=default, sa_column=Column(JSON, nullable=default is None))


# A BigInteger primary key that SQLite still treats as its rowid alias (autoincrement).
_BIGPK = BigInteger().with_variant(Integer(), "sqlite")


class Chat(SQLModel, table=True):
    """A group (or a private chat we track), as configured or first seen."""

    __tablename__ = "chat"
    __table_args__ = (UniqueConstraint("platform", "chat_type", "chat_id", name="uq_chat_key"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    chat_type: str = Field(max_length=16)
    chat_id: str = Field(max_length=128)
    name: str = Field(default="", max_length=255)
    monitored: bool = True
    created_at: datetime = _ts()


class Operator(SQLModel, table=True):
    """A member of staff from the roster (guides, operators, specialists, supervisors, admins)."""

    __tablename__ = "operator"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=255)
    role: str = Field(max_length=16)
    supervisor_id: str = Field(default="", max_length=64)
    store: str = Field(default="", max_length=128, index=True)
    wecom_user_id: str = Field(default="", max_length=128)
    is_bot: bool = False
    active: bool = True
    updated_at: datetime = _ts()


class OperatorIdentity(SQLModel, table=True):
    """Which platform user id belongs to which operator (roles come from here, never payloads)."""

    __tablename__ = "operator_identity"
    __table_args__ = (UniqueConstraint("platform", "user_id", name="uq_identity"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    user_id: str = Field(max_length=128)
    operator_id: str = Field(max_length=64, index=True)


class GroupOwner(SQLModel, table=True):
    """Ownership history: who owned a group when. Questions freeze owners at open time."""

    __tablename__ = "group_owner"
    __table_args__ = (Index("ix_group_owner_chat", "platform", "chat_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    chat_id: str = Field(max_length=128)
    operator_id: str = Field(max_length=64)
    since: datetime = _ts()
    until: datetime | None = _ts(nullable=True)


class Message(SQLModel, table=True):
    """Every message the gateways delivered, stored once (unique natural key)."""

    __tablename__ = "message"
    # The unique key is the only index: nothing reads messages by chat and time, and a second
    # index on this, the most written table, doubled the cost of every stored event. The message
    # id leads: it is the most selective part (a question's messages are found by id), and where
    # an implementation numbers messages in order, new keys land at the end of the index instead
    # of at one place per chat (a page written per row at every commit). The partial index on
    # unhandled rows holds at most the batches in flight (a few thousand entries at the end of
    # the id order): it finds what a crash left between the two intake transactions.
    __table_args__ = (
        UniqueConstraint(
            "message_id", "chat_id", "chat_type", "account_id", "platform", name="uq_message_key"
        ),
        Index(
            "ix_message_unhandled",
            "id",
            sqlite_where=text("NOT handled"),
            postgresql_where=text("NOT handled"),
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(_BIGPK, primary_key=True))
    platform: str = Field(max_length=32)
    account_id: str = Field(max_length=128)
    chat_type: str = Field(max_length=16)
    chat_id: str = Field(max_length=128)
    message_id: str = Field(max_length=128)
    sender_id: str = Field(max_length=128)
    sender_name: str = Field(default="", max_length=255)
    actor_role: str = Field(default="customer", max_length=16)
    operator_id: str | None = Field(default=None, max_length=64)
    is_self: bool = False
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    reply_to_message_id: str | None = Field(default=None, max_length=128)
    mention_user_ids: list[str] = _json(default=[])
    mention_all: bool = False
    sent_at: datetime = _ts()
    received_at: datetime = _ts()
    recalled_at: datetime | None = _ts(nullable=True)
    raw: dict[str, Any] | None = _json()
    # False from the intake's first transaction (the message) until its second (the handlers'
    # effects) commits; rows written any other way are handled as they are written.
    handled: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default=true())
    )


class MessageTally(SQLModel, table=True):
    """Stored messages counted per account and role, kept by the intake in the same transaction
    as the messages (the status page reads these few rows instead of counting ``message``).

    Keyed by account so that processes serving different accounts never update the same row.
    """

    __tablename__ = "message_tally"

    platform: str = Field(max_length=32, primary_key=True)
    account_id: str = Field(max_length=128, primary_key=True)
    actor_role: str = Field(max_length=16, primary_key=True)
    count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class WebSessionRevoked(SQLModel, table=True):
    """Dashboard sessions ended by logout before their expiry (checked on every request, in
    every process; a row is deleted once its session would have expired anyway)."""

    __tablename__ = "web_session_revoked"

    sid: str = Field(max_length=32, primary_key=True)
    expires_at: datetime = _ts()


class Question(SQLModel, table=True):
    """A customer question and its SLA facts (reference/sla.md §7.2).

    ``public_id`` is the engine's question id (``Q<message row id>`` of the opening message), the
    id staff type in commands and the API returns; ``id`` is the internal key rows refer to.
    The ``strict_*`` columns repeat the first response of the strict view (link confidence at or
    above the policy's threshold), so reports aggregate either view in SQL.
    """

    __tablename__ = "question"
    __table_args__ = (
        UniqueConstraint("public_id", name="uq_question_public_id"),
        Index("ix_question_opened", "opened_at"),
        Index("ix_question_day", "local_date"),
        Index("ix_question_chat_status", "platform", "chat_id", "status"),
        # Status lookups, and the open breaches (count and list, most overdue first) as an
        # index range; bot_resolved makes the count covering.
        Index("ix_question_status_due", "status", "frt_due_at", "bot_resolved"),
        Index("ix_question_status_due_cal", "status", "frt_due_calendar_at", "bot_resolved"),
        Index("ix_question_responder", "first_responder_id", "opened_at"),
        Index("ix_question_settle", "settle_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(_BIGPK, primary_key=True))
    public_id: str = Field(max_length=64)
    platform: str = Field(max_length=32)
    account_id: str = Field(max_length=128)
    chat_id: str = Field(max_length=128)
    asker_id: str = Field(max_length=128)
    open_message_id: str = Field(max_length=128)
    message_ids: list[str] = _json(default=[])
    snippet: str = Field(default="", max_length=255)
    opened_at: datetime = _ts()
    opened_epoch: float = 0.0  # opened_at as UNIX seconds: portable elapsed-time arithmetic in SQL
    # opened_at on the business-time axis of the group's calendar (bot/store/sla_rollup.py):
    # business elapsed to t = position(t) - opened_bepoch, computable in SQL.
    opened_bepoch: float = 0.0
    # From this instant on, the row's metrics no longer depend on as_of (bot/store/sla_rollup.py).
    settle_at: datetime | None = _ts(nullable=True)
    local_date: str = Field(default="", max_length=10)  # opened_at's date in the tenant zone
    last_customer_msg_at: datetime = _ts()
    status: str = Field(default="open", max_length=16)
    detector_reason: str = Field(default="", max_length=32)
    detect_score: float = 0.0
    policy_version: int = 1
    calendar_version: int = 1
    owner_ids: list[str] = _json(default=[])
    frt_target_s: float = 300.0
    frt_due_at: datetime | None = _ts(nullable=True)
    frt_due_calendar_at: datetime | None = _ts(nullable=True)
    backlog_due_at: datetime | None = _ts(nullable=True)
    first_response_at: datetime | None = _ts(nullable=True)
    first_responder_id: str | None = Field(default=None, max_length=64)
    first_response_message_id: str | None = Field(default=None, max_length=128)
    link_method: str | None = Field(default=None, max_length=32)
    link_confidence: float | None = None
    frt_business_s: float | None = None
    frt_calendar_s: float | None = None
    strict_first_response_at: datetime | None = _ts(nullable=True)
    strict_first_responder_id: str | None = Field(default=None, max_length=64)
    strict_frt_business_s: float | None = None
    strict_frt_calendar_s: float | None = None
    holding: bool = False
    followup_due_at: datetime | None = _ts(nullable=True)
    followup_done_at: datetime | None = _ts(nullable=True)
    followup_breached: bool | None = None
    resolved_at: datetime | None = _ts(nullable=True)
    resolved_by: str | None = Field(default=None, max_length=64)
    resolver_id: str | None = Field(default=None, max_length=64)
    resolution_method: str | None = Field(default=None, max_length=32)
    resolution_business_s: float | None = None
    resolution_calendar_s: float | None = None
    bot_resolved: bool = False
    reopen_count: int = 0
    last_reopened_at: datetime | None = _ts(nullable=True)
    peer_answered: bool = False
    bot_touch: bool = False
    bot_message_ids: list[str] = _json(default=[])
    dismissed_reason: str | None = Field(default=None, max_length=500)
    dismissed_by: str | None = Field(default=None, max_length=64)
    dismissed_at: datetime | None = _ts(nullable=True)
    withdrawn_at: datetime | None = _ts(nullable=True)
    alert_levels_sent: list[str] = _json(default=[])
    updated_at: datetime = _ts()


class Response(SQLModel, table=True):
    """A staff (or peer / bot) message linked to a question, with how and how sure."""

    __tablename__ = "response"
    __table_args__ = (
        UniqueConstraint("question_id", "chat", "message_id", name="uq_response_message"),
    )

    id: int | None = Field(default=None, sa_column=Column(_BIGPK, primary_key=True))
    question_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    chat: str = Field(default="", max_length=200)  # engine chat key: the group or private chat
    message_id: str = Field(max_length=128)
    responder_id: str = Field(max_length=128)
    kind: str = Field(max_length=16)  # first, holding, followup, peer, bot
    link_method: str = Field(max_length=32)
    confidence: float
    counts_for_sla: bool = True
    holding: bool = False
    cycle: int = 0
    sent_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)


class SlaEvent(SQLModel, table=True):
    """Append-only audit of what happened to a question (alerts, dismissals, reopenings)."""

    __tablename__ = "sla_event"

    id: int | None = Field(default=None, sa_column=Column(_BIGPK, primary_key=True))
    question_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    type: str = Field(max_length=32)
    at: datetime = _ts()
    actor: str = Field(default="", max_length=64)
    meta: dict[str, Any] | None = _json()


class SlaRollup(SQLModel, table=True):
    """Per local day × dimension × key × variant SLA sums (bot/store/sla_rollup.py).

    ``dim``: day (key ""), group (chat id), credit (first responder in the variant's view),
    owner (owner frozen at open, "" = team queue). ``variant``: "<basis>/<strict|lenient>".
    The blobs are packed little-endian integers (fixed-width fields, summed as Python ints):
    ``counts`` the counters, ``frt`` / ``res`` the FRT and resolution histograms, ``cens`` the
    censored questions by opened hour. ``unanswered`` repeats one counter for SQL sums.
    """

    __tablename__ = "sla_rollup"
    __table_args__ = (
        UniqueConstraint("local_date", "dim", "key", "variant", name="uq_sla_rollup_key"),
        Index("ix_sla_rollup_read", "variant", "dim", "local_date"),
    )

    id: int | None = Field(default=None, sa_column=Column(_BIGPK, primary_key=True))
    local_date: str = Field(max_length=10)
    dim: str = Field(max_length=8)
    key: str = Field(default="", max_length=128)
    variant: str = Field(max_length=20)
    unanswered: int = 0
    counts: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    frt: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    res: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    cens: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))


class SlaRollupDay(SQLModel, table=True):
    """One row per local day with questions: its question count and latest ``settle_at``."""

    __tablename__ = "sla_rollup_day"

    local_date: str = Field(primary_key=True, max_length=10)
    settled_at: datetime = _ts()
    questions: int = 0
    rebuilt_at: datetime | None = _ts(nullable=True)


class SlaRollupState(SQLModel, table=True):
    """One row: the rollups' watermark (bot/store/sla_rollup.py).

    The rollups hold exactly the questions whose ``settle_at`` is at or before ``watermark``;
    the ones after it are added by the report from the question rows.
    """

    __tablename__ = "sla_rollup_state"

    id: int = Field(default=1, primary_key=True)
    watermark: datetime = _ts()
    updated_at: datetime = _ts()


class TaskInstance(SQLModel, table=True):
    """One SOP task for one guide on one local date (unique), materialized from a plan."""

    __tablename__ = "task_instance"
    __table_args__ = (
        UniqueConstraint("guide_id", "step", "local_date", "target_key", name="uq_task_key"),
        Index("ix_task_date", "local_date", "guide_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(_BIGPK, primary_key=True))
    guide_id: str = Field(max_length=64)
    store: str = Field(default="", max_length=128)
    step: str = Field(max_length=64)
    local_date: date = Field(sa_column=Column(Date, nullable=False))
    target_key: str = Field(default="", max_length=128)  # customer id for lifecycle tasks
    quota: int = 1
    done: int = 0
    status: str = Field(default="pending", max_length=16)
    plan_id: str = Field(default="", max_length=64)
    plan_version: str = Field(default="", max_length=255)  # Plan.version_tag (with overrides)
    touch_kind: str = Field(default="", max_length=16)  # lifecycle tasks: care/marketing/invite
    window_end: datetime = _ts()
    completed_at: datetime | None = _ts(nullable=True)
    miss_reason: str | None = Field(default=None, max_length=255)
    created_at: datetime = _ts()


class TaskCompletion(SQLModel, table=True):
    """One piece of evidence that a task advanced, with where it came from."""

    __tablename__ = "task_completion"
    __table_args__ = (UniqueConstraint("task_id", "source", "ref", name="uq_completion_ref"),)

    id: int | None = Field(default=None, sa_column=Column(_BIGPK, primary_key=True))
    task_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    source: str = Field(max_length=16)  # observed, api, self
    ref: str = Field(max_length=255)  # e.g. group id posted in, api job id, command message id
    count: int = 1
    at: datetime = _ts()


class Outbox(SQLModel, table=True):
    """Every outbound reminder / alert / digest, claimed with a lease and sent exactly once."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_outbox_key"),
        Index("ix_outbox_due", "status", "due_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(_BIGPK, primary_key=True))
    idempotency_key: str = Field(max_length=200)
    kind: str = Field(max_length=32)  # reminder, nudge, summary, alert, digest, reply
    recipient_id: str = Field(max_length=64)  # operator id
    channel: str = Field(default="", max_length=32)  # onebot11, wecom, simulator
    payload: dict[str, Any] = _json(default={})
    due_at: datetime = _ts()
    window_end: datetime | None = _ts(nullable=True)
    status: str = Field(default="pending", max_length=16)  # pending, sent, missed, failed
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = _ts(nullable=True)
    attempts: int = 0
    sent_at: datetime | None = _ts(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    created_at: datetime = _ts()


class Customer(SQLModel, table=True):
    """A customer contact bound to a guide, for lifecycle programs."""

    __tablename__ = "customer"
    __table_args__ = (UniqueConstraint("platform", "external_id", name="uq_customer_key"),)

    id: int | None = Field(default=None, sa_column=Column(_BIGPK, primary_key=True))
    platform: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    guide_id: str = Field(default="", max_length=64, index=True)
    added_at: datetime = _ts()
    last_purchase_at: datetime | None = _ts(nullable=True)
    source: str = Field(default="", max_length=32)  # friend_add, group_join, import, wecom
    left_at: datetime | None = _ts(nullable=True)


class AccountState(SQLModel, table=True):
    """Last known state of each connected bot account (for /healthz and reports)."""

    __tablename__ = "account_state"
    __table_args__ = (UniqueConstraint("platform", "account_id", name="uq_account"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    account_id: str = Field(max_length=128)
    online: bool = False
    changed_at: datetime = _ts()
    reason: str = Field(default="", max_length=255)
