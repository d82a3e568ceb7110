"""The live status page at ``/``: accounts, message counts and the latest messages.

Customer text is untrusted: it is rendered by Jinja2 with autoescape, never marked safe.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from bot.keys import CLOCK, CONFIG, ENGINE, HUB
from bot.store.messages import recent_messages, tally_by_role

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
)

TEXT = {
    "zh-CN": {
        "title": "sopbot 运行状态",
        "now": "当前时间",
        "accounts": "在线账号",
        "none": "无",
        "totals": "已记录消息",
        "by_role": "按发送者",
        "customer": "客户",
        "operator": "员工",
        "bot": "机器人",
        "recent": "最新消息",
        "time": "时间",
        "group": "群",
        "sender": "发送者",
        "role": "身份",
        "text": "内容",
        "metrics": "Prometheus 指标",
        "switch": "English",
    },
    "en": {
        "title": "sopbot status",
        "now": "Now",
        "accounts": "Accounts online",
        "none": "none",
        "totals": "Messages stored",
        "by_role": "By sender",
        "customer": "customers",
        "operator": "staff",
        "bot": "bot",
        "recent": "Latest messages",
        "time": "Time",
        "group": "Chat",
        "sender": "Sender",
        "role": "Role",
        "text": "Text",
        "metrics": "Prometheus metrics",
        "switch": "中文",
    },
}


def pick_lang(request: web.Request, default: str) -> str:
    lang = request.query.get("lang", default)
    return lang if lang in TEXT else "zh-CN"


async def status_page(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    lang = pick_lang(request, cfg.bot.language)
    tz = ZoneInfo(cfg.bot.timezone)
    async with request.app[ENGINE].connect() as conn:
        rows = await recent_messages(conn, 50)
        counts = await tally_by_role(conn)
    html = _ENV.get_template("status.html").render(
        t=TEXT[lang],
        lang=lang,
        other_lang="en" if lang == "zh-CN" else "zh-CN",
        now=request.app[CLOCK].now().astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z"),
        accounts=request.app[HUB].online(),
        total=sum(counts.values()),
        counts=counts,
        messages=[
            {**r, "local": r["sent_at"].astimezone(tz).strftime("%m-%d %H:%M")} for r in rows
        ],
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8")


def routes() -> list[web.RouteDef]:
    return [web.get("/", status_page)]
