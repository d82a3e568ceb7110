"""``[digest]``: when supervisors get the daily and weekly digests, and the KPI targets.

The targets are also the ones the dashboard's overview compares today's figures with.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Literal

from pydantic import Field, field_validator

from bot.config_types import Duration, Section

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_hhmm(value: str) -> time:
    m = _HHMM.match(value)
    if not m:
        raise ValueError(f'expected a local time "HH:MM", got {value!r}')
    return time(int(m.group(1)), int(m.group(2)))


class DigestSection(Section):
    enabled: bool = True
    daily_at: str = "09:00"
    weekly_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    weekly_at: str = "09:30"
    quiet_hours: str = "21:00-08:00"
    window: Duration = 43200.0
    recipients: tuple[str, ...] = ()
    top_breaches: int = Field(default=5, ge=0, le=50)
    slowest_groups: int = Field(default=3, ge=0, le=50)
    target_attainment: float = Field(default=0.9, ge=0, le=1)
    target_backlog_rate: float = Field(default=0.1, ge=0, le=1)
    target_sop_completion: float = Field(default=0.9, ge=0, le=1)
    target_open_breaches: int = Field(default=0, ge=0)

    @field_validator("daily_at", "weekly_at")
    @classmethod
    def _time(cls, v: str) -> str:
        parse_hhmm(v)
        return v

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str) -> str:
        if v:
            start, sep, end = v.partition("-")
            if not sep:
                raise ValueError('expected "HH:MM-HH:MM" (or "" for none)')
            parse_hhmm(start.strip())
            parse_hhmm(end.strip())
        return v

    def quiet_window(self) -> tuple[time, time] | None:
        if not self.quiet_hours:
            return None
        start, _, end = self.quiet_hours.partition("-")
        return parse_hhmm(start.strip()), parse_hhmm(end.strip())
