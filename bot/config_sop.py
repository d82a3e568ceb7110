"""Config section for the SOP engine: ``[sop]``."""

from __future__ import annotations

from bot.config_types import Section


class SopSection(Section):
    pass
