"""Dashboard pages, actions and exports. Every route but ``/login`` goes through ``guard``.

The overview and the operator table reuse their computed figures for up to
``data.CACHE_SECONDS`` (per scope and period) while the store version (newest question,
response and audit row) is unchanged; the dashboard's own actions clear the cache.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.keys import CLOCK, CONFIG, DISPATCHER, ENGINE
from bot.reports import ReportBuilder, ReportRequest
from bot.store import questions as qstore
from bot.store import web_sessions
from bot.webauth import OWN, SUPERVISOR, Principal, find_user, principal_for, verify_password
from handlers.dashboard import charts, data
from handlers.dashboard.auth import (
    AUTH,
    LOGIN_CSRF_COOKIE,
    PRINCIPAL,
    SESSION,
    SESSION_COOKIE,
    guard,
    now_s,
    set_session_cookie,
)
from handlers.dashboard.exports import csv_response, to_csv
from handlers.dashboard.i18n import TEXT
from handlers.dashboard.params import query_of, report_request
from handlers.dashboard.render import lang_of, local, render
from sop import compliance

log = logging.getLogger("sopbot.dashboard")

OPERATOR_COLUMNS = (
    "name",
    "first_responses",
    "share_of_first_responses",
    "credit_frt_p50",
    "credit_frt_p90",
    "credit_three_min_rate",
    "credit_attainment",
    "credit_followup_breach_rate",
    "owned_questions",
    "owned_attainment_strict",
    "owned_attainment_lenient",
    "owned_answer_rate_48h",
    "owned_backlog_rate_48h",
    "owned_backlog_now",
)
_LABEL_KEYS = {
    "name": "operator",
    "first_responses": "first_responses",
    "share_of_first_responses": "share",
    "credit_frt_p50": "p50",
    "credit_frt_p90": "p90",
    "credit_three_min_rate": "three_min",
    "credit_attainment": "attainment",
    "credit_followup_breach_rate": "followup",
    "owned_questions": "owned_questions",
    "owned_attainment_strict": "attainment_strict",
    "owned_attainment_lenient": "attainment_lenient",
    "owned_answer_rate_48h": "answer_rate_48h",
    "owned_backlog_rate_48h": "backlog_rate",
    "owned_backlog_now": "backlog_now",
}
RATE_COLUMNS = frozenset(
    c for c in OPERATOR_COLUMNS if c.endswith(("rate", "attainment", "_48h", "_strict", "lenient"))
) | {"share_of_first_responses"}


def labels(lang: str) -> dict[str, str]:
    t = TEXT[lang]
    out = {k: t.get(k, k) for k in t}
    out.update({col: t[key] for col, key in _LABEL_KEYS.items()})
    return out


def _sla_build(request: web.Request) -> ReportBuilder:
    build: ReportBuilder = request.app[DISPATCHER].deps["sla_report"]
    return build


# Per application (tests run many apps in one process): the app, weakly, and its cache.
_CACHES: dict[int, tuple[weakref.ref[web.Application], data.PageCache]] = {}


def _cache(app: web.Application) -> data.PageCache:
    found = _CACHES.get(id(app))
    if found is not None and found[0]() is app:
        return found[1]
    for k in [k for k, (ref, _) in _CACHES.items() if ref() is None]:
        del _CACHES[k]
    cache = data.PageCache()
    _CACHES[id(app)] = (weakref.ref(app), cache)
    return cache


async def _cache_key(
    request: web.Request, page: str, principal: Principal, req: ReportRequest
) -> tuple[Any, ...] | None:
    if data.CACHE_SECONDS <= 0:
        return None
    async with request.app[ENGINE].connect() as conn:
        version = await data.store_version(conn)
    period = (req.start, req.end, req.basis, req.strict)
    return _cache(request.app).key(page, principal.team, period, version, as_of=req.as_of)


def _principal(request: web.Request) -> Principal:
    p: Principal = request[PRINCIPAL]
    return p


# -- login -----------------------------------------------------------------------------------


def _safe_next(value: str) -> str:
    # Only same-site paths: "//evil" and "/\\evil" would leave the site.
    if value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


async def login_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(16)
    resp = render(
        request,
        "login.html",
        status=status,
        error=error,
        login_csrf=token,
        next=_safe_next(request.query.get("next", "/")),
    )
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login")
    return resp


async def login_post(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    t = TEXT[lang_of(request)]
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = str(form.get("csrf", ""))
    if not cookie or not hmac.compare_digest(cookie, given):
        raise web.HTTPForbidden(text="bad or missing CSRF token")
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:256]
    state = request.app[AUTH]
    ip = request.remote or "?"
    now = now_s(request)
    if state.limiter.blocked(ip, username, now):
        log.warning("login rate limited ip=%s", ip)
        return await login_page(request, t["too_many"], status=429)
    cfg = request.app[CONFIG]
    user = find_user(cfg.web.users, username)
    ok = await asyncio.get_running_loop().run_in_executor(
        None, verify_password, user.password_hash if user else None, password
    )
    principal = principal_for(user, cfg.operators) if ok and user else None
    if principal is None or user is None:
        state.limiter.failed(ip, username, now)
        log.info("login failed ip=%s", ip)
        return await login_page(request, t["bad_login"], status=401)
    state.limiter.succeeded(username)
    log.info("login ok user=%s level=%s", user.username, principal.level)
    resp = web.HTTPSeeOther(_safe_next(str(form.get("next", "/"))))
    stamp = state.codec.stamp(user.password_hash)
    set_session_cookie(resp, request, state.codec.issue(user.username, now, stamp))
    resp.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise resp


@guard(OWN)
async def logout(request: web.Request) -> web.StreamResponse:
    # Recorded, not only forgotten by this browser: a copy of the token must stop working too.
    session = request[SESSION]
    async with request.app[ENGINE].begin() as conn:
        await web_sessions.revoke(
            conn,
            session.sid,
            datetime.fromtimestamp(session.expires, UTC),
            request.app[CLOCK].now(),
        )
    log.info("logout user=%s", session.username)
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp


# -- pages -----------------------------------------------------------------------------------


@guard(OWN)
async def overview(request: web.Request) -> web.Response:
    cfg, principal = request.app[CONFIG], _principal(request)
    req = report_request(request, default_days=1)
    engine = request.app[ENGINE]
    key = await _cache_key(request, "overview", principal, req)
    cached = _cache(request.app).get(key)
    if cached is None:

        async def others() -> tuple[int, dict[str, int], list[compliance.TaskRecord]]:
            async with engine.connect() as conn:
                breaches = await data.open_breach_count(conn, principal, req.as_of, req.basis)
                bands = await data.backlog_bands(conn, principal, req.as_of, req.strict)
                records = await data.sop_records(conn, principal, req.start, req.end)
            return breaches, bands, records

        # Two connections at once: the database works on both while Python waits.
        summary, (breaches, bands, records) = await asyncio.gather(
            data.sla_summary(engine, cfg, principal, req, _sla_build(request)), others()
        )
        cached = (summary, breaches, bands, compliance.summarize(records, req.as_of))
        _cache(request.app).put(key, cached)
    summary, breaches, bands, sop = cached
    att = summary["attainment_strict"] if req.strict else summary["attainment_lenient"]
    d = cfg.digest
    kpis = [
        ("attainment", att, d.target_attainment, "pct", att is None or att >= d.target_attainment),
        (
            "backlog_rate",
            summary["backlog_rate_48h"],
            d.target_backlog_rate,
            "pct",
            summary["backlog_rate_48h"] is None
            or summary["backlog_rate_48h"] <= d.target_backlog_rate,
        ),
        (
            "sop_completion",
            sop.completion_rate.value,
            d.target_sop_completion,
            "pct",
            sop.completion_rate.value is None
            or sop.completion_rate.value >= d.target_sop_completion,
        ),
        (
            "open_breaches",
            breaches,
            d.target_open_breaches,
            "int",
            breaches <= d.target_open_breaches,
        ),
        ("backlog", sum(bands.values()), None, "int", True),
        ("questions", summary["questions"], None, "int", True),
    ]
    return render(
        request, "overview.html", kpis=kpis, bands=bands, summary=summary, q=query_of(req)
    )


def _sorted(rows: list[dict[str, Any]], key: str, desc: bool) -> list[dict[str, Any]]:
    def k(row: dict[str, Any]) -> tuple[int, Any]:
        value = row.get(key)
        if key in ("credit_frt_p50", "credit_frt_p90"):
            value = row.get(f"{key}_s")
        return (value is None, value if value is not None else 0)

    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    return sorted(present, key=k, reverse=desc) + missing


@guard(OWN)
async def operators(request: web.Request) -> web.Response:
    cfg, principal = request.app[CONFIG], _principal(request)
    req = report_request(request, default_days=7)
    key = await _cache_key(request, "operators", principal, req)
    rows = _cache(request.app).get(key)
    if rows is None:
        engine = request.app[ENGINE]
        rows = await data.operator_rows(engine, cfg, principal, req, _sla_build(request))
        _cache(request.app).put(key, rows)
    sort = request.query.get("sort", "name")
    if sort in OPERATOR_COLUMNS:
        rows = _sorted(rows, sort, request.query.get("dir") == "desc")
    return render(
        request,
        "operators.html",
        rows=rows,
        columns=OPERATOR_COLUMNS,
        rates=RATE_COLUMNS,
        labels=labels(lang_of(request)),
        q=query_of(req),
        sort=sort,
    )


@guard(OWN)
async def breaches(request: web.Request) -> web.Response:
    cfg, principal = request.app[CONFIG], _principal(request)
    req = report_request(request)
    async with request.app[ENGINE].connect() as conn:
        rows = await data.breaches(conn, cfg, principal, req.as_of, req.basis)
    return render(
        request,
        "breaches.html",
        rows=rows,
        q=query_of(req),
        fmt=lambda t: local(request, t),
        can_act=principal.at_least(SUPERVISOR),
        flash=request.query.get("done", ""),
    )


async def _question_or_404(request: web.Request) -> data.QuestionDetail:
    qid = request.match_info["qid"][:64]
    async with request.app[ENGINE].connect() as conn:
        detail = await data.question_detail(conn, qid)
    if detail is None or not data.visible_question(_principal(request), detail.row):
        # Not visible is reported as absent: ids of other teams' questions leak nothing.
        raise web.HTTPNotFound(text="not found")
    return detail


@guard(OWN)
async def question(request: web.Request) -> web.Response:
    detail = await _question_or_404(request)
    names = {op.id: op.name for op in request.app[CONFIG].operators}
    return render(
        request,
        "question.html",
        d=detail,
        names=names,
        fmt=lambda t: local(request, t, "%Y-%m-%d %H:%M:%S"),
        can_act=_principal(request).at_least(SUPERVISOR),
    )


async def _apply(request: web.Request, action: Callable[[Any, str, Any], list[Any]]) -> None:
    """Run a question-engine action and persist its effects (the audit row comes with them)."""
    detail = await _question_or_404(request)
    deps = request.app[DISPATCHER].deps
    engine = deps.get("question_engine")
    if engine is None:
        raise web.HTTPConflict(text="question is not open")
    qid = detail.row.public_id
    async with request.app[ENGINE].begin() as conn:
        # Act on the stored state under the row lock: another process may hold this
        # question's chat and have answered or closed it since this process loaded it.
        await qstore.refresh(conn, engine, [qid], keep=deps.get("sla_dirty", ()))
        q = engine.get(qid)
        if q is None or not q.is_live:
            raise web.HTTPConflict(text="question is not open")
        now = request.app[CLOCK].now()
        effects = action(engine, qid, now)
        ctx = qstore.RowContext(
            policy_of=engine.policy_for,
            calendar_of=deps["sla_calendar_of"],
            tz=ZoneInfo(request.app[CONFIG].bot.timezone),
            now=now,
        )
        await qstore.save_effects(conn, effects, ctx)
    _cache(request.app).clear()
    timer = deps.get("sla_timer")
    if timer is not None:
        for e in effects:
            timer.cancel(e.question.id)


def _actor(principal: Principal) -> str:
    return principal.operator_id or f"web:{principal.username}"


@guard(SUPERVISOR)
async def dismiss(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    reason = str(form.get("reason", "")).strip()[:200]
    if not reason:
        raise web.HTTPBadRequest(text=TEXT[lang_of(request)]["reason_required"])
    by = _actor(_principal(request))
    await _apply(request, lambda eng, qid, now: eng.dismiss(qid, by=by, reason=reason, at=now))
    log.info("question %s dismissed by %s via web", request.match_info["qid"][:64], by)
    raise web.HTTPSeeOther("/breaches?done=dismissed")


@guard(SUPERVISOR)
async def resolve(request: web.Request) -> web.StreamResponse:
    by = _actor(_principal(request))
    await _apply(request, lambda eng, qid, now: eng.resolve(qid, by=by, at=now, method="web"))
    log.info("question %s resolved by %s via web", request.match_info["qid"][:64], by)
    raise web.HTTPSeeOther("/breaches?done=resolved")


@guard(OWN)
async def trends(request: web.Request) -> web.Response:
    cfg, principal = request.app[CONFIG], _principal(request)
    req = report_request(request, default_days=30)
    engine = request.app[ENGINE]
    async with engine.connect() as conn:
        rows = await data.cohort_rows(conn, principal, req)
        history = await data.backlog_history(conn, cfg, principal, req)
    found = {
        str(r["date"]): r
        for r in await data.daily(engine, cfg, principal, req, _sla_build(request), rows)
    }
    # Every day of the period gets a slot, so quiet days show as gaps rather than vanish.
    days = [found.get(day, {"date": day, "questions": 0}) for day, _ in await _period_days(req)]
    t = TEXT[lang_of(request)]
    labels_ = [d["date"] for d in days]
    pct = [
        (t["attainment_strict"], [_p(d.get("attainment_strict")) for d in days]),
        (t["attainment_lenient"], [_p(d.get("attainment_lenient")) for d in days]),
    ]
    frt = [
        ("p50 (s)", [d.get("frt_p50_s") for d in days]),
        ("p90 (s)", [d.get("frt_p90_s") for d in days]),
    ]
    band_names = list(history[0][1]) if history else []
    svg = {
        "attainment": charts.line_chart(t["attainment"], labels_, pct, fmt="{:.0f}%", top=100),
        "frt": charts.line_chart(t["frt"], labels_, frt),
        "volume": charts.stacked_bars(
            t["volume"], labels_, [(t["questions"], [float(d["questions"]) for d in days])]
        ),
        "backlog": charts.stacked_bars(
            t["backlog_by_age"],
            [d for d, _ in history],
            [(b, [float(h[b]) for _, h in history]) for b in band_names],
        ),
        "heat": charts.heat_map(
            t["heatmap"],
            t["weekdays"].split(","),
            data.heatmap(rows, cfg.bot.timezone, req.basis, req.strict),
        ),
    }
    return render(request, "trends.html", svg=svg, days=days, q=query_of(req))


async def _period_days(req: ReportRequest) -> list[tuple[str, None]]:
    n = (req.end - req.start).days + 1
    return [((req.start + timedelta(days=i)).isoformat(), None) for i in range(n)]


def _p(v: float | None) -> float | None:
    return None if v is None else v * 100


@guard(OWN)
async def sop_page(request: web.Request) -> web.Response:
    cfg, principal = request.app[CONFIG], _principal(request)
    req = report_request(request, default_days=7)
    async with request.app[ENGINE].connect() as conn:
        records = await data.sop_records(conn, principal, req.start, req.end)
    tables = data.sop_tables(cfg, records, req.end, req.as_of)
    return render(request, "sop.html", tables=tables, q=query_of(req))


# -- exports ---------------------------------------------------------------------------------

_STAT = (
    "tasks",
    "on_time",
    "late",
    "missed",
    "open",
    "completion_rate",
    "on_time_rate",
    "unit_rate",
)


async def _export_rows(
    request: web.Request, name: str, req: ReportRequest
) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    cfg, principal, engine = request.app[CONFIG], _principal(request), request.app[ENGINE]
    if name == "operators":
        rows = await data.operator_rows(engine, cfg, principal, req, _sla_build(request))
        return ("operator", *OPERATOR_COLUMNS), rows
    async with engine.connect() as conn:
        if name == "questions":
            qrows = await data.cohort_rows(conn, principal, req)
            return QUESTION_COLUMNS, [question_row(r, req) for r in qrows]
        if name == "breaches":
            found = await data.breaches(conn, cfg, principal, req.as_of, req.basis, limit=100_000)
            return BREACH_COLUMNS, [
                {
                    "question": b.public_id,
                    "group": b.group,
                    "customer": b.asker_id,
                    "snippet": b.snippet,
                    "opened": b.opened_at,
                    "due": b.due_at,
                    "waited_s": round(b.waited_s),
                    "owners": b.owners,
                    "level": b.level,
                    "basis": req.basis,
                }
                for b in found
            ]
        records = await data.sop_records(conn, principal, req.start, req.end)
    if name == "sop_tasks":
        return TASK_COLUMNS, [
            {
                "date": r.local_date,
                "guide": r.guide_id,
                "store": r.store,
                "step": r.step,
                "quota": r.quota,
                "done": r.done,
                "outcome": compliance.outcome(r, req.as_of).value,
                "completed_at": r.completed_at,
                "reason": r.miss_reason or "",
                "sources": sorted(r.sources),
            }
            for r in records
        ]
    tables = data.sop_tables(cfg, records, req.end, req.as_of)
    key = name.removeprefix("sop_")
    first = {"guides": ("guide", "name", "store"), "stores": ("store",), "days": ("date",)}[key]
    extra = ("streak", "best_streak") if key == "guides" else ()
    return (*first, *_STAT, *extra), tables[key]


QUESTION_COLUMNS = (
    "question",
    "group",
    "customer",
    "opened",
    "status",
    "basis",
    "view",
    "first_responder",
    "link_method",
    "confidence",
    "frt_s",
    "frt_target_s",
    "attained",
    "owners",
    "snippet",
)
BREACH_COLUMNS = (
    "question",
    "group",
    "customer",
    "snippet",
    "opened",
    "due",
    "waited_s",
    "owners",
    "level",
    "basis",
)
TASK_COLUMNS = (
    "date",
    "guide",
    "store",
    "step",
    "quota",
    "done",
    "outcome",
    "completed_at",
    "reason",
    "sources",
)
EXPORTS = (
    "operators",
    "questions",
    "breaches",
    "sop_tasks",
    "sop_guides",
    "sop_stores",
    "sop_days",
)


def question_row(r: Any, req: ReportRequest) -> dict[str, Any]:
    """One question as the screen counts it: the view's responder and the basis' FRT."""
    strict_weak = req.strict and (r.link_confidence or 0.0) < 0.8 - 1e-9
    prefix = "strict_" if strict_weak else ""
    at = getattr(r, f"{prefix}first_response_at")
    frt = getattr(r, f"{prefix}frt_{req.basis}_s") if at is not None and at <= req.as_of else None
    attained = None if frt is None else frt <= r.frt_target_s + 1e-6
    return {
        "question": r.public_id,
        "group": r.chat_id,
        "customer": r.asker_id,
        "opened": r.opened_at,
        "status": r.status,
        "basis": req.basis,
        "view": "strict" if req.strict else "lenient",
        "first_responder": getattr(r, f"{prefix}first_responder_id") if frt is not None else None,
        "link_method": r.link_method,
        "confidence": r.link_confidence,
        "frt_s": frt,
        "frt_target_s": r.frt_target_s,
        "attained": attained,
        "owners": list(r.owner_ids or ()),
        "snippet": r.snippet,
    }


@guard(OWN)
async def export(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in EXPORTS:
        raise web.HTTPNotFound(text="no such export")
    req = report_request(request, default_days=7)
    columns, rows = await _export_rows(request, name, req)
    text = to_csv(columns, rows, _export_labels(lang_of(request)))
    span = f"{req.start.isoformat()}_{req.end.isoformat()}_{req.basis}"
    return csv_response(f"sopbot-{name}-{span}.csv", text)


def _export_labels(lang: str) -> dict[str, str]:
    out = labels(lang)
    t = TEXT[lang]
    out.update(
        question=t["question"],
        opened=t["opened"],
        status=t["status_col"],
        first_responder=t["responder"],
        link_method=t["link"],
        confidence=t["confidence"],
        frt_s=t["frt"] + " (s)",
        frt_target_s=t["target"] + " (s)",
        attained=t["attainment"],
        owners=t["owners"],
        snippet=t["snippet"],
        waited_s=t["waited"] + " (s)",
        level=t["level"],
        due=t["due"],
        customer=t["customer"],
        group=t["group"],
        outcome=t["status_col"],
        completed_at=t["time"],
        reason=t["reason"].split("(")[0],
        quota=t["target"],
        done=t["done"],
        step="step",
        sources="sources",
        operator="id",
        name=t["operator"],
    )
    return out
