"""SlaPolicy and EscalationStep defaults and validation."""

from __future__ import annotations

import pytest

from sop.policy import EscalationStep, SlaPolicy


def test_defaults_match_the_spec() -> None:
    """The default policy is sla.md §7.7: 5 min FRT, 48 h calendar backlog, 15 min follow-up."""
    p = SlaPolicy()
    assert (p.frt_target_s, p.backlog_window_s, p.followup_after_holding_s) == (300, 172800, 900)
    assert p.backlog_business_time is False
    assert p.business_hours_only is True
    assert (p.burst_merge_s, p.proximity_window_s, p.reopen_window_s) == (180, 600, 259200)
    assert p.warn_ratio == 0.8
    assert p.escalation == (EscalationStep(notify="supervisor", after_s_past_breach=1800),)


def test_strict_confidence_threshold() -> None:
    """Links at or above strict_confidence count as strict."""
    p = SlaPolicy()
    assert p.is_strict(0.8)
    assert not p.is_strict(0.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frt_target_s": 0},
        {"backlog_window_s": -1},
        {"warn_ratio": 1.0},
        {"burst_merge_s": -5},
        {"strict_confidence": 1.5},
        {"warn_notify": "customer"},
        {"breach_notify": ""},
    ],
)
def test_invalid_policy_rejected(kwargs: dict[str, object]) -> None:
    """Out-of-range values and unknown notify targets are refused."""
    with pytest.raises(ValueError):  # noqa: PT011
        SlaPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"notify": "owners"},
        {"notify": "owners", "at_ratio": 0.5, "after_s_past_breach": 60},
        {"notify": "owners", "at_ratio": 0},
        {"notify": "owners", "after_s_past_breach": -1},
        {"notify": "group", "at_ratio": 1.5},
    ],
)
def test_invalid_escalation_step_rejected(kwargs: dict[str, object]) -> None:
    """A step needs exactly one trigger and a known notify target."""
    with pytest.raises(ValueError):  # noqa: PT011
        EscalationStep(**kwargs)  # type: ignore[arg-type]


def test_combined_notify_targets() -> None:
    """Targets may be joined with '+'."""
    step = EscalationStep(notify="owners+supervisor", at_ratio=1.5)
    assert step.notify == "owners+supervisor"
