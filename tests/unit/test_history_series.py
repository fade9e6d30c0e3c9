"""The dashboard's wait percentiles read off per-minute wait histograms (admin.series)."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graphile_worker_cli.admin import series
from graphile_worker_cli.queries.history import WAIT_EDGES


def _histogram(waits: list[float]) -> list[int]:
    counts = [0] * (len(WAIT_EDGES) + 1)
    for wait in waits:
        counts[bisect.bisect_right(WAIT_EDGES, wait)] += 1  # as SQL width_bucket
    return counts


def _minute(at: datetime, waits: list[float], failed: int = 0) -> dict[str, Any]:
    return {"minute": at, "completed": len(waits) - failed, "failed": failed,
            "wait_p50": 123.0, "wait_p95": 456.0, "wait_counts": _histogram(waits)}


@pytest.mark.parametrize("waits", [
    [0.5] * 100,
    [i / 10 for i in range(1, 1001)],
    [0.0004] * 60 + [3.0] * 40,
    [250_000.0] * 10,
])
def test_percentiles_off_the_histogram_are_within_one_bucket(waits: list[float]) -> None:
    counts = _histogram(waits)
    for fraction in (0.5, 0.95):
        exact = sorted(waits)[min(len(waits) - 1, int(fraction * len(waits)))]
        found = series.percentile(counts, fraction)
        assert found is not None
        if exact >= WAIT_EDGES[-1]:
            assert found == WAIT_EDGES[-1]
        elif exact < WAIT_EDGES[0]:
            assert found < WAIT_EDGES[0]
        else:
            assert exact / 1.26 <= found <= exact * 1.26


def test_no_waits_no_percentile() -> None:
    assert series.percentile([0] * (len(WAIT_EDGES) + 1), 0.5) is None


def test_minutes_group_into_buckets_and_a_minute_keeps_its_exact_percentiles() -> None:
    start = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    rows = [_minute(start + timedelta(minutes=m), [1.0] * 3, failed=1) for m in range(20)]
    by_minute = series.buckets(rows, 60)
    assert len(by_minute) == 20
    assert (by_minute[0].completed, by_minute[0].failed) == (2, 1)
    assert (by_minute[0].wait_p50, by_minute[0].wait_p95) == (123.0, 456.0)
    by_quarter = series.buckets(rows, 900)
    assert [b.start for b in by_quarter] == [start, start + timedelta(minutes=15)]
    assert [(b.completed, b.failed) for b in by_quarter] == [(30, 15), (10, 5)]
    assert by_quarter[0].wait_p50 is not None and 1.0 <= by_quarter[0].wait_p50 < 1.26
