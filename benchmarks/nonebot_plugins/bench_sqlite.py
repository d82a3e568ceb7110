"""Plugin (b): each group message is stored in SQLite; ``/count`` answers the row count privately.

One INSERT and commit per message from the handler (what a plugin does without a writer of its
own), with the pragmas sopbot uses (WAL, synchronous=NORMAL).
"""

import sqlite3

from nonebot import get_driver, on_command, on_message
from nonebot.adapters.onebot.v11 import Bot, GroupMessageEvent, PrivateMessageEvent
from nonebot.plugin import PluginMetadata

__plugin_meta__ = PluginMetadata(
    name="bench_sqlite", description="stores group messages in SQLite", usage="/count"
)

_db = sqlite3.connect(str(getattr(get_driver().config, "bench_db", "bench.db")))
_db.execute("PRAGMA journal_mode=WAL")
_db.execute("PRAGMA synchronous=NORMAL")
_db.execute(
    "CREATE TABLE IF NOT EXISTS message (id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL,"
    " group_id INTEGER NOT NULL, user_id INTEGER NOT NULL, time INTEGER NOT NULL,"
    " text TEXT NOT NULL, UNIQUE (group_id, message_id))"
)
_db.commit()

store = on_message(priority=10, block=False)


@store.handle()
async def _store(event: GroupMessageEvent) -> None:
    _db.execute(
        "INSERT OR IGNORE INTO message (message_id, group_id, user_id, time, text)"
        " VALUES (?, ?, ?, ?, ?)",
        (event.message_id, event.group_id, event.user_id, event.time, event.get_plaintext()),
    )
    _db.commit()


report = on_command("count", priority=1, block=True)


@report.handle()
async def _report(bot: Bot, event: PrivateMessageEvent) -> None:
    (n,) = _db.execute("SELECT count(*) FROM message").fetchone()
    await bot.send_private_msg(user_id=event.user_id, message=f"count {n}")
