"""Built-in simulator gateway for ``sopbot demo``: a scripted cast chatting in several groups.

``demo_cast`` builds the people and groups (and the roster config for them), ``day_script``
the pure, seeded schedule of one day, and ``SimulatorGateway`` plays it into the event sink on
the injected clock while recording what the bot sends.
"""

from bot.gateway.simulator.cast import (
    PLATFORM,
    Brand,
    Cast,
    Customer,
    SimGroup,
    StaffMember,
    demo_cast,
)
from bot.gateway.simulator.gateway import SimulatorGateway, build_event
from bot.gateway.simulator.script import (
    Behaviour,
    DayScript,
    Outcome,
    QuestionPlan,
    ScheduledAction,
    day_script,
)

__all__ = [
    "PLATFORM",
    "Behaviour",
    "Brand",
    "Cast",
    "Customer",
    "DayScript",
    "Outcome",
    "QuestionPlan",
    "ScheduledAction",
    "SimGroup",
    "SimulatorGateway",
    "StaffMember",
    "build_event",
    "day_script",
    "demo_cast",
]
