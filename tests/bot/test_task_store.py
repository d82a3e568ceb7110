"""SOP task store on SQLite and PostgreSQL: idempotent writes, evidence, customers, records."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import tasks as store
from bot.store.models import Customer
from sop.compliance import TaskStatus

_CU = Customer.__table__  # type: ignore[attr-defined]

D = date(2026, 3, 10)
NOW = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
END = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # 22:00 Shanghai


def _task(guide: str, step: str, quota: int = 3, target: str = "") -> store.NewTask:
    return store.NewTask(guide, "店1", step, D, quota, END, "p", "p@1", target)


async def test_materialize_is_idempotent_and_keeps_history(engine: AsyncEngine) -> None:
    """A second run (even with an edited quota) inserts nothing and changes no row."""
    async with engine.begin() as conn:
        assert (
            await store.materialize(conn, [_task("g1", "moments"), _task("g2", "moments")], NOW)
            == 2
        )
        assert await store.materialize(conn, [_task("g1", "moments", quota=5)], NOW) == 0
        assert await store.materialize(conn, [_task("g1", "welcome", 1, "c9")], NOW) == 1
        rows = await store.tasks_on(conn, D, ["g1"])
    assert [(r.step, r.quota, r.target_key) for r in rows] == [
        ("moments", 3, ""),
        ("welcome", 1, "c9"),
    ]


async def test_evidence_dedups_on_ref_and_completes_once(engine: AsyncEngine) -> None:
    """The same ref twice counts once; reaching the quota sets completed_at and status."""
    async with engine.begin() as conn:
        await store.materialize(conn, [_task("g1", "group_posts", 2)], NOW)
        task = await store.find_task(conn, "g1", "group_posts", D)
        assert task is not None
        for ref in ("group:a", "group:a", "group:b", "group:c"):
            task = await store.add_evidence(
                conn, task, source="observed", ref=ref, count=1, at=NOW + timedelta(hours=1)
            )
    assert task.done == 3
    assert task.status == TaskStatus.DONE
    assert task.completed_at == NOW + timedelta(hours=1)  # the 2nd distinct group, not the 3rd


async def test_late_completion_and_api_count_replacement(engine: AsyncEngine) -> None:
    """Completion after the window is late; a re-fetched API figure replaces, not adds."""
    async with engine.begin() as conn:
        await store.materialize(conn, [_task("g1", "moments", 2)], NOW)
        task = await store.find_task(conn, "g1", "moments", D)
        assert task is not None
        late = END + timedelta(minutes=5)
        task = await store.add_evidence(
            conn, task, source="api", ref="moments:day", count=1, at=late, replace_count=True
        )
        assert task.done == 1
        task = await store.add_evidence(
            conn, task, source="api", ref="moments:day", count=2, at=late, replace_count=True
        )
    assert (task.done, task.status) == (2, TaskStatus.LATE)
    with pytest.raises(ValueError, match="source"):
        async with engine.begin() as conn:
            await store.add_evidence(conn, task, source="guess", ref="x", count=1, at=NOW)


async def test_mark_missed_and_records(engine: AsyncEngine) -> None:
    """Unfinished tasks past their window become missed; records carry sources and reasons."""
    async with engine.begin() as conn:
        await store.materialize(conn, [_task("g1", "moments", 1), _task("g2", "moments", 1)], NOW)
        t1 = await store.find_task(conn, "g1", "moments", D)
        assert t1 is not None
        await store.add_evidence(conn, t1, source="self", ref="cmd:1", count=1, at=NOW)
        assert await store.mark_missed(conn, END - timedelta(seconds=1), D) == 0
        assert await store.mark_missed(conn, END, D) == 1
        records = await store.task_records(conn, D, D)
        only_g2 = await store.task_records(conn, D, D, guide="g2")
    by = {r.guide_id: r for r in records}
    assert by["g1"].sources == frozenset({"self"})
    assert by["g1"].status is TaskStatus.DONE
    assert by["g2"].status is TaskStatus.MISSED
    assert by["g2"].miss_reason == "not_done"
    assert [r.guide_id for r in only_g2] == ["g2"]


async def test_customers_bind_once_and_import_overwrites(engine: AsyncEngine) -> None:
    """A contact event never rebinds a customer; an import sets the file's values."""
    row = store.CustomerRow("onebot11", "c1", "g1", NOW, None, "friend_add")
    async with engine.begin() as conn:
        assert await store.upsert_customer(conn, row) is True
        other = store.CustomerRow("onebot11", "c1", "g2", NOW, None, "group_join")
        assert await store.upsert_customer(conn, other) is False
    async with engine.begin() as conn:
        people = await store.customers(conn, tz=UTC)
        assert [(c.id, c.guide_id) for c in people] == [("c1", "g1")]
        imported = store.CustomerRow("onebot11", "c1", "g2", NOW, NOW, "import")
        assert await store.upsert_customer(conn, imported, overwrite=True) is False
        people = await store.customers(conn, ["g2"], UTC)
    assert people[0].last_purchase_on == NOW.date()


async def test_customer_pages_walk_bound_customers_in_id_order(engine: AsyncEngine) -> None:
    """Pages hold bound customers only (not unbound, not left), each after the last id read."""
    async with engine.begin() as conn:
        for n in range(7):
            guide = "" if n == 2 else "g1"  # c2 is bound to nobody
            row = store.CustomerRow("onebot11", f"c{n}", guide, NOW, None, "import")
            await store.upsert_customer(conn, row)
        await conn.execute(update(_CU).where(_CU.c.external_id == "c5").values(left_at=NOW))
    pages = []
    after = 0
    async with engine.connect() as conn:
        while True:
            people, last = await store.customer_page(conn, after, 2, UTC)
            if not people:
                assert last == after
                break
            assert last > after
            pages.append([c.id for c in people])
            after = last
    assert pages == [["c0", "c1"], ["c3", "c4"], ["c6"]]


def test_csv_errors_name_the_row(tmp_path: Path) -> None:
    """Unknown guide, empty id, bad date and a missing column are reported with the row."""
    p = tmp_path / "c.csv"
    cases = {
        "guide,customer_id,added_date,last_purchase\nzz,c1,2026-01-01,\n": "row 2: guide 'zz'",
        "guide,customer_id,added_date,last_purchase\ng1,,2026-01-01,\n": "row 2: customer_id",
        "guide,customer_id,added_date,last_purchase\ng1,c1,2026-01-01,\ng1,c2,01/02/2026,\n": (
            "row 3: dates"
        ),
        "guide,customer_id,added_date\ng1,c1,2026-01-01\n": (
            "row 1: missing column(s) last_purchase"
        ),
    }
    for text, message in cases.items():
        p.write_text(text, encoding="utf-8")
        with pytest.raises(store.CsvError, match=re.escape(message)):
            store.read_customers_csv(p, {"g1"}, "onebot11", "Asia/Shanghai")
    p.write_text(
        "guide,customer_id,added_date,last_purchase\ng1,c1,2026-01-01,2026-02-03\n", "utf-8"
    )
    (row,) = store.read_customers_csv(p, {"g1"}, "onebot11", "Asia/Shanghai")
    assert row.added_at == datetime(2025, 12, 31, 16, 0, tzinfo=UTC)


async def test_observed_batch_matches_one_by_one_evidence(engine: AsyncEngine) -> None:
    """``add_observed`` (a batch) gives the rows, counts and completion times of one-by-one."""
    h = timedelta(hours=1)
    items = [
        store.Evidence("g1", "group_posts", D, "group:a", NOW + 1 * h),
        store.Evidence("g1", "group_posts", D, "group:a", NOW + 2 * h),  # same group: once
        store.Evidence("g2", "group_posts", D, "group:a", NOW + 2 * h),
        store.Evidence("g1", "group_posts", D, "group:b", NOW + 3 * h),  # reaches quota 2
        store.Evidence("g1", "group_posts", D, "group:c", NOW + 4 * h),
        store.Evidence("g3", "group_posts", D, "group:a", NOW + 1 * h),  # no task: ignored
        store.Evidence("g2", "private_chats", D, "private:x", NOW + 5 * h),
    ]
    async with engine.begin() as conn:
        await store.materialize(
            conn,
            [
                _task("g1", "group_posts", 2),
                _task("g2", "group_posts", 2),
                _task("g2", "private_chats", 1),
            ],
            NOW,
        )
        assert await store.add_observed(conn, items[:2]) == 1
        assert await store.add_observed(conn, items[2:]) == 4
        assert await store.add_observed(conn, items) == 0  # a replay writes nothing
        got = {(r.guide_id, r.step): r for r in await store.tasks_on(conn, D, ["g1", "g2"])}
    g1, g2 = got["g1", "group_posts"], got["g2", "group_posts"]
    assert (g1.done, g1.status, g1.completed_at) == (3, TaskStatus.DONE, NOW + 3 * h)
    assert (g2.done, g2.status, g2.completed_at) == (1, TaskStatus.PENDING, None)
    chats = got["g2", "private_chats"]
    assert (chats.done, chats.completed_at) == (1, NOW + 5 * h)
