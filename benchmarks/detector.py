"""Detector quality and speed on the labelled group-message set.

Run from the repo root: ``python -m benchmarks.detector``. Prints precision/recall/F1 on the whole
set, on the dev half (even lines, used while tuning) and on the held-out half (odd lines), error
counts per kind, some misclassified messages, classifications per second, and µs per message for
the intake's detector calls: the three separate calls the question handler makes for a customer
message, the single-pass ``analyze`` that gives the same verdicts, and ``is_holding_reply``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sop.detect import (
    DEFAULT,
    DetectorConfig,
    analyze,
    classify,
    is_acknowledgement,
    is_exempt,
    is_holding_reply,
)

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "group_messages_labelled.jsonl"


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled message."""

    text: str
    mentions_staff: bool
    media_only: bool
    label: bool
    kind: str


@dataclass(frozen=True, slots=True)
class Scores:
    """Confusion counts with the usual ratios."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def line(self, name: str) -> str:
        n = self.tp + self.fp + self.fn + self.tn
        return (
            f"{name:<9} n={n:<4} P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f}"
            f"  (tp={self.tp} fp={self.fp} fn={self.fn} tn={self.tn})"
        )


def load(path: Path = DATA) -> list[Sample]:
    """Read the JSONL set in file order."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(
                Sample(d["text"], d["mentions_staff"], d["media_only"], d["label"], d["kind"])
            )
    return out


def predict(s: Sample, cfg: DetectorConfig = DEFAULT) -> bool:
    """The detector's verdict for one sample."""
    return classify(
        s.text, mentions_staff=s.mentions_staff, media_only=s.media_only, cfg=cfg
    ).is_question


def score(samples: list[Sample], cfg: DetectorConfig = DEFAULT) -> Scores:
    """Confusion counts of the detector over samples."""
    c: Counter[tuple[bool, bool]] = Counter((s.label, predict(s, cfg)) for s in samples)
    return Scores(tp=c[True, True], fp=c[False, True], fn=c[True, False], tn=c[False, False])


def dev_half(samples: list[Sample]) -> list[Sample]:
    """Even lines (0-based): the half looked at while tuning."""
    return samples[0::2]


def held_out_half(samples: list[Sample]) -> list[Sample]:
    """Odd lines: the half kept aside."""
    return samples[1::2]


def throughput(samples: list[Sample], n: int = 200_000) -> float:
    """Classifications per second over n calls cycling through the set."""
    reps = n // len(samples) + 1
    work = (samples * reps)[:n]
    start = time.perf_counter()
    for s in work:
        classify(s.text, mentions_staff=s.mentions_staff, media_only=s.media_only)
    return n / (time.perf_counter() - start)


def separate_calls(s: Sample) -> None:
    """The customer path as handlers/questions.py makes it: classify, then ack, then exempt."""
    classify(s.text, mentions_staff=s.mentions_staff, media_only=s.media_only)
    is_acknowledgement(s.text)
    if not s.media_only:  # the handler short-circuits: `not media_only and is_exempt(...)`
        is_exempt(s.text)


def single_pass(s: Sample) -> None:
    """The same three verdicts from one call."""
    analyze(s.text, mentions_staff=s.mentions_staff, media_only=s.media_only)


def holding_reply(s: Sample) -> None:
    """The staff path's only detector call."""
    is_holding_reply(s.text)


def us_per_message(
    calls: Mapping[str, Callable[[Sample], None]], samples: list[Sample], reps: int, rounds: int
) -> dict[str, float]:
    """Best-of-rounds µs per message for each call over the set repeated reps times.

    CPU time, not wall time, so that other processes on the machine count less; rounds alternate
    between the calls so that what load remains hits them alike; the minimum is the round least
    disturbed.
    """
    work = samples * reps
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.process_time()
            for s in work:
                call(s)
            best[name] = min(best[name], time.process_time() - start)
    return {name: t / len(work) * 1e6 for name, t in best.items()}


def print_call_costs(samples: list[Sample], reps: int = 40, rounds: int = 7) -> None:
    """µs per message for the intake's detector calls: today's three calls against analyze."""
    calls = {"separate": separate_calls, "analyze": single_pass, "holding": holding_reply}
    us = us_per_message(calls, samples, reps, rounds)
    print(f"\nµs per message, best of {rounds} rounds over {len(samples) * reps:,} messages:")
    print(f"  customer: classify + is_acknowledgement + is_exempt  {us['separate']:6.2f}")
    print(
        f"  customer: analyze                                    {us['analyze']:6.2f}"
        f"  ({us['separate'] / us['analyze']:.1f}x less)"
    )
    print(f"  staff:    is_holding_reply                           {us['holding']:6.2f}")


def main() -> None:
    """Print quality figures, per-kind errors, examples, throughput and per-call cost."""
    samples = load()
    print(score(samples).line("all"))
    print(score(dev_half(samples)).line("dev"))
    print(score(held_out_half(samples)).line("held-out"))
    kinds: Counter[str] = Counter(s.kind for s in samples)
    errors: Counter[str] = Counter(s.kind for s in samples if predict(s) != s.label)
    print("\nerrors per kind:")
    for kind, total in sorted(kinds.items()):
        print(f"  {kind:<12} {errors[kind]:>3} / {total}")
    wrong = [s for s in samples if predict(s) != s.label]
    print(f"\nmisclassified ({len(wrong)}), first 15:")
    for s in wrong[:15]:
        d = classify(s.text, mentions_staff=s.mentions_staff, media_only=s.media_only)
        tag = "FN" if s.label else "FP"
        print(f"  {tag} [{s.kind}] {d.reason} {d.score:.2f}  {s.text[:60]!r}")
    english = [s for s in samples if s.text.isascii() and s.text.strip()]
    print(f"\nEnglish share: {len(english) / len(samples):.1%}")
    print(f"throughput: {throughput(samples):,.0f} messages/s (200k classifications)")
    print_call_costs(samples)


if __name__ == "__main__":
    main()
