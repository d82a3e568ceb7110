"""The batched intake histogram exposes exactly what prometheus_client's Histogram would."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bot.metrics import BatchHistogram

BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


def _series(text: bytes) -> list[str]:
    # Bucket, count and sum lines (the reference also exports a _created timestamp).
    return [
        line
        for line in text.decode().splitlines()
        if line.startswith("h_") and not line.startswith("h_created")
    ]


def test_batch_histogram_matches_the_reference() -> None:
    rng = random.Random(3)
    values = [rng.choice(BUCKETS) for _ in range(50)] + [rng.expovariate(8) for _ in range(500)]
    ours_reg, ref_reg = CollectorRegistry(), CollectorRegistry()
    ours = BatchHistogram("h", "doc", BUCKETS, registry=ours_reg)
    ref = Histogram("h", "doc", registry=ref_reg, buckets=BUCKETS)
    ours.observe_many(values[:300])
    for v in values[300:]:
        ours.observe(v)
    for v in values:
        ref.observe(v)
    got, want = _series(generate_latest(ours_reg)), _series(generate_latest(ref_reg))
    assert [g.rsplit(" ", 1)[0] for g in got] == [w.rsplit(" ", 1)[0] for w in want]
    for g, w in zip(got, want, strict=True):
        # Counts exactly; the sum up to float rounding (added in another order).
        assert float(g.rsplit(" ", 1)[1]) == pytest.approx(float(w.rsplit(" ", 1)[1]))
