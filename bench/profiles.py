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

# `gw run --processes N` for the CPU-bound row.
PROCESSES_FLAG = "--processes"


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
