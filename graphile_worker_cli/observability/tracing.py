"""OpenTelemetry tracing as a hook plugin (the ``otel`` extra).

```python
options.add_plugin(TracingPlugin())                     # the worker: a span per job run
utils = WorkerUtils(pool, hooks=HookRegistry().add_plugin(TracingPlugin()))  # producers
```

- Producer side (``JobScheduled``): a ``gw.add_job <task>`` span (kind PRODUCER) per job
  added, child of whatever span is current, and the span's W3C trace context written to
  ``_gw_job_traces`` (job id -> traceparent) on the same connection, so it commits or rolls
  back with the job.
- Worker side (``JobStart`` .. ``JobComplete``/``JobFail``/``JobInterrupted``): a
  ``gw.run <task>`` span (kind CONSUMER) whose parent is the producer's context when the
  table has one. It is the current span while the handler runs, so spans the handler opens
  nest under it. The row is deleted once the job completes or fails for good.

Why a table and not the payload: the payload belongs to the user and is read by the Node
reference and by SQL triggers; a hidden key would change what they see. The table costs
one insert per traced add and one read (and one delete) per traced run, paid only where
this plugin is installed. Jobs added without the plugin simply start a new trace. Rows of
jobs completed by workers without the plugin are pruned when a traced worker starts.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from graphile_worker_cli import db
from graphile_worker_cli.hooks import HookRegistry, events
from graphile_worker_cli.queries import tracing as queries

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tracing needs the otel extra: pip install 'graphile-worker-cli[otel]'"
    ) from missing

log = logging.getLogger("gw.tracing")

INSTRUMENTATION_NAME = "graphile_worker_cli"
_PROPAGATOR = TraceContextTextMapPropagator()


class TracingPlugin:
    """Spans for job runs and job additions, linked across processes by the trace table."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        propagate: bool = True,
    ) -> None:
        self.tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=tracer_provider)
        self.propagate = propagate
        """Store/read the producer's trace context in ``_gw_job_traces``."""
        self._pool: asyncpg.Pool | None = None
        self._schema = db.DEFAULT_SCHEMA
        self._tables: set[tuple[str, str]] = set()  # (database, schema) known to have it
        self._spans: dict[int, tuple[Span, object]] = {}

    def register(self, registry: HookRegistry) -> None:
        registry.on(events.JobScheduled, self._on_scheduled)
        registry.on(events.WorkerStart, self._on_worker_start)
        registry.on(events.JobStart, self._on_job_start)
        registry.on(events.JobComplete, self._on_complete)
        registry.on(events.JobFail, self._on_fail)
        registry.on(events.JobInterrupted, self._on_interrupted)

    # -- producer -------------------------------------------------------------------------
    async def _on_scheduled(self, ctx: events.JobScheduledContext) -> None:
        job = ctx.job
        span = self.tracer.start_span(
            f"gw.add_job {job.task_identifier}", kind=SpanKind.PRODUCER,
            start_time=ctx.started_ns, attributes=_job_attributes(job),
        )
        try:
            if self.propagate:
                carrier: dict[str, str] = {}
                _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
                if "traceparent" in carrier:
                    if isinstance(ctx.conn, asyncpg.Connection | PoolConnectionProxy):
                        await self._ensure_table(ctx.conn, ctx.schema)
                    else:  # another driver's connection: no address to remember it by
                        await ctx.fetch(queries.CREATE_TRACE_TABLE.sql(ctx.schema))
                    await ctx.fetch(
                        queries.INSERT_TRACE.sql(ctx.schema), [job.id], carrier["traceparent"],
                        carrier.get("tracestate"),
                    )
        finally:
            span.end()

    async def _ensure_table(self, conn: asyncpg.Connection, schema: str) -> None:
        # asyncpg keeps the connection's address and database in private attributes; they
        # only key a cache here (a miss costs one `create table if not exists`).
        params = getattr(conn, "_params", None)
        key = (f"{getattr(conn, '_addr', '')}/{getattr(params, 'database', '')}", schema)
        if key in self._tables:
            return
        await conn.execute(queries.CREATE_TRACE_TABLE.sql(schema))
        self._tables.add(key)

    # -- worker ---------------------------------------------------------------------------
    async def _on_worker_start(self, ctx: events.WorkerStartContext) -> None:
        self._pool, self._schema = ctx.pool, ctx.schema
        if not self.propagate:
            return
        async with ctx.pool.acquire() as conn:
            await self._ensure_table(conn, ctx.schema)
            await conn.execute(queries.PRUNE_TRACES.sql(ctx.schema))

    async def _parent(self, job_id: int) -> otel_context.Context | None:
        if not self.propagate or self._pool is None:
            return None
        row = await self._pool.fetchrow(queries.GET_TRACE.sql(self._schema), job_id)
        if row is None:
            return None
        carrier = {"traceparent": row["traceparent"]}
        if row["tracestate"]:
            carrier["tracestate"] = row["tracestate"]
        return _PROPAGATOR.extract(carrier)

    async def _on_job_start(self, ctx: events.JobStartContext) -> None:
        job = ctx.job
        parent = await self._parent(job.id)
        attributes = _job_attributes(job)
        attributes["gw.worker_id"] = ctx.worker_id
        span = self.tracer.start_span(
            f"gw.run {job.task_identifier}", context=parent, kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        # The worker awaits JobStart in the task that then runs the handler: attaching here
        # makes the span current for the handler, detached in the outcome event.
        token = otel_context.attach(trace.set_span_in_context(span))
        self._spans[job.id] = (span, token)

    def _finish(self, job_id: int, error: str | None, **attributes: Any) -> None:
        entry = self._spans.pop(job_id, None)
        if entry is None:
            return  # never started (skipped or failed by BeforeJobRun)
        span, token = entry
        for key, value in attributes.items():
            span.set_attribute(f"gw.{key}", value)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:  # detached from another context: the span is ended all the same
            log.debug("could not detach the span context of job %d", job_id)

    async def _forget(self, job_id: int) -> None:
        if self.propagate and self._pool is not None:
            await self._pool.execute(queries.DELETE_TRACES.sql(self._schema), [job_id])

    async def _on_complete(self, ctx: events.JobCompleteContext) -> None:
        self._finish(ctx.job.id, None, outcome="complete")
        await self._forget(ctx.job.id)

    async def _on_fail(self, ctx: events.JobFailContext) -> None:
        self._finish(ctx.job.id, ctx.error, outcome="fail", will_retry=ctx.will_retry)
        if not ctx.will_retry:
            await self._forget(ctx.job.id)

    def _on_interrupted(self, ctx: events.JobInterruptedContext) -> None:
        self._finish(ctx.job.id, f"interrupted: {ctx.reason}", outcome="interrupted")


def _job_attributes(job: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gw.job_id": job.id,
        "gw.task": job.task_identifier,
        "gw.attempt": job.attempts,
        "gw.max_attempts": job.max_attempts,
    }
    if job.queue_name is not None:
        attributes["gw.queue"] = job.queue_name
    return attributes
