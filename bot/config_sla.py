"""Config sections of the question log and SLA engine: [sla], [calendar], [detector]."""

from __future__ import annotations

from bot.config_types import Section


class SlaSection(Section):
    pass


class CalendarSection(Section):
    pass


class DetectorSection(Section):
    pass
