"""The one place that says how each side is configured: sizes, concurrency, profiles.

A profile is the set of options a side runs with. "defaults" passes nothing but the shared
concurrency; "tuned" turns on each side's throughput features. gw flags the installed
``gw run`` does not have yet are dropped (and reported), so the harness keeps working while
the throughput features land one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_CONCURRENCY = 24
SCHEMA = "graphile_worker"

PROFILES = ("defaults", "tuned")

GW_TUNED_LOCAL_QUEUE_SIZE = "500"

# gw: extra `gw run` flags per profile (flag, value or None for a switch).
GW_PROFILES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "defaults": (),
    "tuned": (
        ("--local-queue-size", GW_TUNED_LOCAL_QUEUE_SIZE),
        ("--complete-job-batch-delay", "0"),
        ("--fail-job-batch-delay", "0"),
    ),
}

# The reference: preset options per profile, written to a graphile.config.js (0.18's CLI reads
# `--config FILE`; options that have no CLI flag, like localQueue, exist only as preset options).
REFERENCE_PROFILES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "tuned": {
        "worker": {
            "localQueue": {"size": 500},
            "completeJobBatchDelay": 0,
            "failJobBatchDelay": 0,
        }
    },
}

# gw with job history on (the drain_tuned_history row, against the same profile without).
HISTORY_FLAGS = ("--history-retention", "7d")

# `gw run --processes N` for the CPU-bound row.
PROCESSES_FLAG = "--processes"

# `gw run --task-max-concurrency TASK=N` for the rows of a drain with a per-task limit.
TASK_LIMIT_FLAG = "--task-max-concurrency"


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    drain_jobs: int
    latency_samples: int
    latency_rate: float  # jobs per second the producer adds, one at a time
    enqueue_jobs: int
    enqueue_batch: int
    cpu_jobs: int
    cpu_loops: int  # iterations of the CPU-bound handler's loop
    repeats: int  # cheap measurements (once on an empty queue, enqueue) keep the best of these
    drain_repeats: int = 1  # drains alternate the sides this many times and keep each best
    backlog_jobs: int = 0  # the tuned drain once more on a backlog this big (0: not measured)


FULL = Sizes(
    drain_jobs=50_000,
    latency_samples=1_000,
    latency_rate=100.0,
    enqueue_jobs=20_000,
    enqueue_batch=500,
    cpu_jobs=2_000,
    cpu_loops=50_000,
    repeats=3,
    drain_repeats=2,
    backlog_jobs=200_000,
)

QUICK = Sizes(
    drain_jobs=2_000,
    latency_samples=100,
    latency_rate=200.0,
    enqueue_jobs=2_000,
    enqueue_batch=500,
    cpu_jobs=200,
    cpu_loops=50_000,
    repeats=1,
    backlog_jobs=4_000,
)


@dataclass(frozen=True)
class ScaleSizes:
    """How big each curve of ``python -m bench scale`` goes (see bench/README.md)."""

    backlogs: tuple[int, ...]  # ready jobs
    future_jobs: int  # jobs due later, beside ...
    future_ready: int  # ... this many ready ones
    queue_counts: tuple[int, ...]  # named queues the queue curve's jobs are spread over
    queue_jobs: int
    process_counts: tuple[int, ...]  # worker processes on one database
    process_jobs: int
    fetch_samples: int  # fetch statements timed per point (each side, each batch size)
    fetch_budget: float  # seconds those may take at most
    gw_bound: float  # seconds a gw drain may take before it is stopped
    reference_bound: float  # the same for the reference (it slows down on big backlogs)
    # Drains of each side per point, by the point's ready jobs: (at most this many ready,
    # this many drains), the first that fits wins; one drain above them all. Short drains
    # swing most from run to run, so they are repeated and the point keeps the median.
    short_drain_repeats: tuple[tuple[int, int], ...] = ()
    drain_repeats: int | None = None  # every point's drains instead (--drain-repeats)


REPEATED_GROUPS = ("backlog", "future")
"""The curves the 20% goal is judged on: only their short drains are repeated by default
(the queue and process curves would take far longer, for no verdict)."""


def drain_repeats(sizes: ScaleSizes, ready: int, group: str = "backlog") -> int:
    """How many times each side drains a point of ``ready`` runnable jobs of ``group``."""
    if sizes.drain_repeats is not None:
        return sizes.drain_repeats
    if group not in REPEATED_GROUPS:
        return 1
    for at_most, repeats in sizes.short_drain_repeats:
        if ready <= at_most:
            return repeats
    return 1


SCALE_FULL = ScaleSizes(
    backlogs=(10_000, 100_000, 1_000_000),
    future_jobs=1_000_000,
    future_ready=10_000,
    queue_counts=(1, 100, 10_000),
    queue_jobs=20_000,
    process_counts=(1, 2, 4, 8),
    process_jobs=100_000,
    fetch_samples=20,
    fetch_budget=20.0,
    gw_bound=300.0,
    reference_bound=90.0,
    short_drain_repeats=((10_000, 5), (100_000, 3)),
)

SCALE_QUICK = ScaleSizes(
    backlogs=(200, 1_000),
    future_jobs=1_000,
    future_ready=200,
    queue_counts=(1, 10),
    queue_jobs=40,
    process_counts=(1, 2),
    process_jobs=400,
    fetch_samples=3,
    fetch_budget=5.0,
    gw_bound=60.0,
    reference_bound=5.0,
)

# Jobs each side's fetch asks for with a profile: gw's defaults fetch one per free slot
# (up to the concurrency), the reference's one job per fetch; tuned, both a local queue.
FETCH_BATCH = {
    "defaults": {"gw": DEFAULT_CONCURRENCY, "reference": 1},
    "tuned": {"gw": int(GW_TUNED_LOCAL_QUEUE_SIZE), "reference": 500},
}
