"""SLA policy values (reference/sla.md §7.7): targets, windows and the escalation ladder.

A policy is versioned; every question stores the version it opened under, so editing the policy
never rewrites the history of questions already open (sla.md §4 "policy change mid-flight").
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Who an alert goes to. Several may be joined with "+", e.g. "owners+supervisor".
NOTIFY_TARGETS = frozenset({"owners", "supervisor", "responder"})


def _check_notify(notify: str) -> None:
    parts = notify.split("+")
    if not notify or any(p not in NOTIFY_TARGETS for p in parts):
        raise ValueError(f"notify must be {'|'.join(sorted(NOTIFY_TARGETS))} joined by '+'")


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """One rung of the ladder: a share of the FRT target, or seconds after the breach."""

    notify: str
    at_ratio: float | None = None
    after_s_past_breach: float | None = None

    def __post_init__(self) -> None:
        if (self.at_ratio is None) == (self.after_s_past_breach is None):
            raise ValueError("EscalationStep needs exactly one of at_ratio, after_s_past_breach")
        if self.at_ratio is not None and self.at_ratio <= 0:
            raise ValueError("at_ratio must be > 0")
        if self.after_s_past_breach is not None and self.after_s_past_breach < 0:
            raise ValueError("after_s_past_breach must be >= 0")
        _check_notify(self.notify)


DEFAULT_LADDER = (EscalationStep(notify="supervisor", after_s_past_breach=1800),)


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Targets and windows in seconds; which of them run on business time is explicit."""

    version: int = 1
    frt_target_s: float = 300
    backlog_window_s: float = 172800
    # Friso's "within 48 hours" is wall-clock time, hence calendar by default (sla.md §7.8).
    backlog_business_time: bool = False
    business_hours_only: bool = True
    followup_after_holding_s: float = 900
    burst_merge_s: float = 180
    proximity_window_s: float = 600
    reopen_window_s: float = 259200
    auto_resolve_after_answer_s: float = 86400
    warn_ratio: float = 0.8
    escalation: tuple[EscalationStep, ...] = field(default=DEFAULT_LADDER)
    strict_confidence: float = 0.8
    quiet_hours_follow_calendar: bool = True
    warn_notify: str = "owners"
    breach_notify: str = "owners"
    backlog_notify: str = "supervisor"
    followup_notify: str = "responder"

    def __post_init__(self) -> None:
        positive = {
            "frt_target_s": self.frt_target_s,
            "backlog_window_s": self.backlog_window_s,
            "followup_after_holding_s": self.followup_after_holding_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be > 0")
        windows = {
            "burst_merge_s": self.burst_merge_s,
            "proximity_window_s": self.proximity_window_s,
            "reopen_window_s": self.reopen_window_s,
            "auto_resolve_after_answer_s": self.auto_resolve_after_answer_s,
        }
        for name, value in windows.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0 < self.warn_ratio < 1:
            raise ValueError("warn_ratio must be between 0 and 1")
        if not 0 <= self.strict_confidence <= 1:
            raise ValueError("strict_confidence must be between 0 and 1")
        for notify in (
            self.warn_notify,
            self.breach_notify,
            self.backlog_notify,
            self.followup_notify,
        ):
            _check_notify(notify)

    def is_strict(self, confidence: float) -> bool:
        """Whether a link of this confidence counts in the strict figures."""
        return confidence >= self.strict_confidence
