"""The dashboard's outcome and queue-wait series, from per-minute history rows
(``queries.history.HISTORY_MINUTES``: counts, exact p50/p95 of the minute, and the waits by
bucket of ``WAIT_EDGES``).

A one-minute bucket shows the minute's exact percentiles. A wider bucket (the day view's 15
minutes) sums its minutes' wait histograms and reads the percentiles off the sum,
interpolated within a histogram bucket: at most one bucket's width off (ten buckets a
decade, so within about 26%), which a chart does not show.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphile_worker_cli.queries.history import WAIT_EDGES


@dataclass(slots=True)
class Bucket:
    """One point of the series: jobs and queue wait of the minutes in it."""

    start: datetime
    completed: int = 0
    failed: int = 0
    wait_p50: float | None = None
    wait_p95: float | None = None
    counts: list[int] = field(default_factory=lambda: [0] * (len(WAIT_EDGES) + 1))


def buckets(rows: Iterable[Any], bucket_seconds: int) -> list[Bucket]:
    """Per-minute rows (oldest first) grouped into buckets of ``bucket_seconds``, each
    starting at a multiple of it since the epoch."""
    found: dict[int, Bucket] = {}
    for row in rows:
        minute: datetime = row["minute"]
        key = math.floor(minute.timestamp() / bucket_seconds) * bucket_seconds
        bucket = found.get(key)
        if bucket is None:
            bucket = found[key] = Bucket(datetime.fromtimestamp(key, UTC))
            if bucket_seconds <= 60:
                bucket.wait_p50, bucket.wait_p95 = row["wait_p50"], row["wait_p95"]
        bucket.completed += row["completed"]
        bucket.failed += row["failed"]
        for index, count in enumerate(row["wait_counts"]):
            bucket.counts[index] += count
    result = sorted(found.values(), key=lambda b: b.start)
    if bucket_seconds > 60:
        for bucket in result:
            bucket.wait_p50 = percentile(bucket.counts, 0.5)
            bucket.wait_p95 = percentile(bucket.counts, 0.95)
    return result


def percentile(counts: Sequence[int], fraction: float) -> float | None:
    """The ``fraction`` percentile of waits counted by bucket of ``WAIT_EDGES`` (see the
    module), or None without any."""
    total = sum(counts)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            within = (rank - seen) / count
            if index == 0:
                return WAIT_EDGES[0] * within
            if index == len(WAIT_EDGES):
                return WAIT_EDGES[-1]
            low, high = WAIT_EDGES[index - 1], WAIT_EDGES[index]
            # Ten buckets a decade: a geometric step within one.
            return float(low * (high / low) ** within)
        seen += count
    return WAIT_EDGES[-1]
