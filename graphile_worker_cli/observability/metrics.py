"""Prometheus metrics as a hook plugin (the ``metrics`` extra: prometheus-client).

```python
options.add_plugin(MetricsPlugin(port=9108))   # gw run --metrics-port 9108
```

Counters and the run-duration histogram are fed by job events; queue depth, the age of
the oldest runnable job (per task) and this worker's heartbeat age come from one query
every ``refresh_interval`` seconds on the worker's pool. Each plugin has its own
``CollectorRegistry`` (pass ``registry=`` to share one), served on ``port`` when given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIServer

import asyncpg

from graphile_worker_cli import db
from graphile_worker_cli import stall_watchdog as watchdog
from graphile_worker_cli.errors import BadInputError
from graphile_worker_cli.hooks import HookRegistry, events
from graphile_worker_cli.queries import metrics as queries
from graphile_worker_cli.recovery import liveness

try:
    import prometheus_client as prom
except ImportError as missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "Prometheus metrics need the metrics extra: pip install 'graphile-worker-cli[metrics]'"
    ) from missing

log = logging.getLogger("gw.metrics")

DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)


class MetricsPlugin:
    """Registers job/worker hooks that feed Prometheus metrics (prefix ``gw_``)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "0.0.0.0",
        registry: prom.CollectorRegistry | None = None,
        refresh_interval: float = 10.0,
        local_queue_size: Callable[[], int] | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        self.refresh_interval = refresh_interval
        self.local_queue_size = local_queue_size
        """Returns the local queue's current size (set by the worker when it has one)."""
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._pool: asyncpg.Pool | None = None
        self._schema = db.DEFAULT_SCHEMA
        self._worker_id = ""
        r = self.registry
        self.started = prom.Counter(
            "gw_jobs_started", "Jobs started, by task", ["task"], registry=r
        )
        self.completed = prom.Counter(
            "gw_jobs_completed", "Jobs completed, by task", ["task"], registry=r
        )
        self.failed = prom.Counter(
            "gw_jobs_failed", "Failed attempts (retried or not), by task", ["task"], registry=r
        )
        self.permanently_failed = prom.Counter(
            "gw_jobs_permanently_failed", "Jobs out of attempts, by task", ["task"], registry=r
        )
        self.interrupted = prom.Counter(
            "gw_jobs_interrupted", "Jobs handed back by a shutdown, by task", ["task"],
            registry=r,
        )
        self.duration = prom.Histogram(
            "gw_job_run_duration_seconds", "Handler run time, by task and outcome",
            ["task", "outcome"], buckets=DURATION_BUCKETS, registry=r,
        )
        self.running = prom.Gauge("gw_jobs_running", "Jobs running in this worker", registry=r)
        self.queue_depth = prom.Gauge(
            "gw_queue_depth", "Runnable jobs waiting, by task (all workers)", ["task"],
            registry=r,
        )
        self.oldest_age = prom.Gauge(
            "gw_queue_oldest_runnable_age_seconds",
            "How long the oldest runnable job has been due, by task", ["task"], registry=r,
        )
        self.locked = prom.Gauge("gw_jobs_locked", "Jobs locked by a worker, by task", ["task"],
                                 registry=r)
        self.local_queue = prom.Gauge(
            "gw_local_queue_size", "Jobs fetched ahead in this worker's local queue",
            registry=r,
        )
        self.heartbeat_age = prom.Gauge(
            "gw_heartbeat_age_seconds", "Seconds since this worker's last heartbeat "
            "(-1 when it is not registered)", registry=r,
        )
        self.local_queue.set_function(self._local_queue_size)
        # Read from the liveness and watchdog threads' figures at scrape time: true even
        # while the event loop (which refreshes the other gauges) is blocked.
        self.longest_stall = prom.Gauge(
            "gw_event_loop_longest_stall_seconds",
            "Longest recent stall of this worker's event loop (0: none)", registry=r,
        )
        self.longest_stall.set_function(self._longest_stall)
        self._db_heartbeat_age = -1.0
        self.heartbeat_age.set_function(self._heartbeat_age_now)

    # -- plugin ---------------------------------------------------------------------------
    def register(self, registry: HookRegistry) -> None:
        registry.on(events.WorkerStart, self._on_start)
        registry.on(events.WorkerShutdown, self._on_shutdown)
        registry.on(events.JobStart, self._on_job_start)
        registry.on(events.JobComplete, self._on_complete)
        registry.on(events.JobFail, self._on_fail)
        registry.on(events.JobPermanentlyFail, self._on_permanent_failure)
        registry.on(events.JobInterrupted, self._on_interrupted)

    def serve(self) -> None:
        """Start the HTTP endpoint (``/metrics``) now; BadInputError if the port is taken.
        Idempotent; without a port it does nothing."""
        if self.port is None or self._server is not None:
            return
        try:
            self._server, self._thread = prom.start_http_server(
                self.port, addr=self.host, registry=self.registry
            )
        except OSError as error:
            raise BadInputError(
                f"cannot serve metrics on {self.host}:{self.port}: {error.strerror or error}"
            ) from None
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format (what ``/metrics`` returns)."""
        return bytes(prom.generate_latest(self.registry))

    async def refresh(self) -> None:
        """Query queue depth, oldest runnable age and heartbeat age now."""
        if self._pool is None:
            return
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(queries.QUEUE_STATS.sql(self._schema))
            age = await _heartbeat_age(conn, self._schema, self._worker_id)
        seen = set()
        for row in rows:
            seen.add(row["task"])
            self.queue_depth.labels(row["task"]).set(row["runnable"])
            self.oldest_age.labels(row["task"]).set(row["oldest_runnable_age"])
            self.locked.labels(row["task"]).set(row["locked"])
        for gauge in (self.queue_depth, self.oldest_age, self.locked):
            for labels in _label_values(gauge):
                if labels[0] not in seen:
                    gauge.labels(*labels).set(0)
        self._db_heartbeat_age = age

    # -- handlers -------------------------------------------------------------------------
    def _longest_stall(self) -> float:
        return watchdog.longest_recent_stall(self._worker_id or "") or 0.0

    def _heartbeat_age_now(self) -> float:
        local = liveness.seconds_since_heartbeat(self._worker_id or "")
        return local if local is not None else self._db_heartbeat_age

    def _local_queue_size(self) -> float:
        return float(self.local_queue_size()) if self.local_queue_size is not None else 0.0

    async def _on_start(self, ctx: events.WorkerStartContext) -> None:
        self._pool, self._schema, self._worker_id = ctx.pool, ctx.schema, ctx.worker_id
        if self.local_queue_size is None:
            self.local_queue_size = ctx.local_queue_length
        self.serve()
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_loop(), name="gw-metrics-refresh"
            )

    async def _on_shutdown(self, ctx: events.WorkerShutdownContext) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        with contextlib.suppress(*db.TRANSIENT_ERRORS):
            await self.refresh()  # final figures for a last scrape
        self._pool = None

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except db.TRANSIENT_ERRORS as error:
                log.warning("metrics refresh failed: %s", error)
            await asyncio.sleep(self.refresh_interval)

    def _on_job_start(self, ctx: events.JobStartContext) -> None:
        self.started.labels(ctx.job.task_identifier).inc()
        self.running.inc()

    def _on_complete(self, ctx: events.JobCompleteContext) -> None:
        task = ctx.job.task_identifier
        self.completed.labels(task).inc()
        if not ctx.skipped:
            self.running.dec()
            self.duration.labels(task, "complete").observe(ctx.duration)

    def _on_fail(self, ctx: events.JobFailContext) -> None:
        task = ctx.job.task_identifier
        self.failed.labels(task).inc()
        if ctx.ran:
            self.running.dec()
            self.duration.labels(task, "fail").observe(ctx.duration)

    def _on_permanent_failure(self, ctx: events.JobPermanentlyFailContext) -> None:
        self.permanently_failed.labels(ctx.job.task_identifier).inc()

    def _on_interrupted(self, ctx: events.JobInterruptedContext) -> None:
        self.interrupted.labels(ctx.job.task_identifier).inc()
        self.running.dec()


async def _heartbeat_age(conn: asyncpg.Connection, schema: str, worker_id: str) -> float:
    try:
        value = await conn.fetchval(queries.HEARTBEAT_AGE.sql(schema), worker_id)
    except asyncpg.UndefinedTableError:
        return -1.0
    return float(value) if value is not None else -1.0


def _label_values(gauge: prom.Gauge) -> list[tuple[str, ...]]:
    """The label tuples a labelled gauge has children for."""
    children: dict[tuple[str, ...], Any] = getattr(gauge, "_metrics", {})
    return list(children)
