"""Prometheus metrics and OpenTelemetry tracing plugins against a real worker and database."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from graphile_worker_cli import context, hooks, logs
from graphile_worker_cli.observability.metrics import MetricsPlugin
from graphile_worker_cli.observability.tracing import TracingPlugin
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers.metrics import free_port, sample, scrape
from tests.helpers.worker import add_job, make_options

S = "graphile_worker"


def _job_id(span: ReadableSpan) -> Any:
    return (span.attributes or {})["gw.job_id"]


async def ok(payload: Any, ctx: context.WorkerContext) -> None:
    return None


async def bad(payload: Any, ctx: context.WorkerContext) -> None:
    raise RuntimeError("nope")


async def test_metrics_endpoint_shows_what_the_run_did(
    db_url: str, conn: asyncpg.Connection
) -> None:
    for i in range(3):
        await add_job(conn, "ok", {"i": i})
    await add_job(conn, "bad", {}, max_attempts=1)
    await add_job(conn, "bad", {}, max_attempts=3)
    await add_job(conn, "someone_elses", {})
    await add_job(conn, "someone_elses", {})
    port = free_port()
    plugin = MetricsPlugin(port=port, host="127.0.0.1", refresh_interval=3600)
    options = make_options(db_url).define_job(ok, "ok").define_job(bad, "bad")
    worker = await options.add_plugin(plugin).init()
    try:
        await worker.run_once()
        text = await asyncio.to_thread(scrape, port)
    finally:
        plugin.close()
    assert sample(text, "gw_jobs_started_total", task="ok") == 3
    assert sample(text, "gw_jobs_completed_total", task="ok") == 3
    assert sample(text, "gw_jobs_failed_total", task="bad") == 2
    assert sample(text, "gw_jobs_permanently_failed_total", task="bad") == 1
    assert sample(text, "gw_jobs_completed_total", task="bad") is None
    assert sample(text, "gw_job_run_duration_seconds_count", task="ok", outcome="complete") == 3
    assert sample(text, "gw_job_run_duration_seconds_count", task="bad", outcome="fail") == 2
    assert sample(text, "gw_jobs_running") == 0
    # refreshed at shutdown: the two jobs of a task this worker does not run are waiting
    assert sample(text, "gw_queue_depth", task="someone_elses") == 2
    oldest = sample(text, "gw_queue_oldest_runnable_age_seconds", task="someone_elses")
    assert oldest is not None and oldest >= 0
    assert sample(text, "gw_jobs_locked", task="someone_elses") == 0
    assert sample(text, "gw_local_queue_size") == 0
    heartbeat = sample(text, "gw_heartbeat_age_seconds")
    assert heartbeat is not None


@pytest.fixture
def exporter() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


async def test_a_span_per_job_with_the_producers_trace_id(
    db_url: str, conn: asyncpg.Connection, exporter: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, memory = exporter
    tracer = provider.get_tracer("test")
    producer_hooks = hooks.HookRegistry().add_plugin(TracingPlugin(provider))
    async with await WorkerUtils.connect(db_url, hooks=producer_hooks) as wu:
        with tracer.start_as_current_span("web request") as request:
            first = await wu.add_job("traced", {"n": 1})
            second = await wu.add_jobs([("traced", {"n": 2})])
        untraced = await WorkerUtils.connect(db_url)
        async with untraced:
            orphan = await untraced.add_job("traced", {"n": 3})
    request_trace = request.get_span_context().trace_id
    assert await conn.fetchval(f"select count(*) from {S}._gw_job_traces") == 2

    inner: list[Any] = []

    async def traced(payload: Any, ctx: context.WorkerContext) -> None:
        with tracer.start_as_current_span("inside the handler") as span:
            assert isinstance(span, sdk_trace.Span)
            inner.append((ctx.job_id, span.get_span_context(), span.parent))

    options = make_options(db_url).define_job(traced, "traced")
    worker = await options.add_plugin(TracingPlugin(provider)).init()
    await worker.run_once()

    spans = memory.get_finished_spans()
    adds = {_job_id(s): s for s in spans if s.name == "gw.add_job traced"}
    runs = {_job_id(s): s for s in spans if s.name == "gw.run traced"}
    assert set(adds) == {first.id, second[0].id}
    assert set(runs) == {first.id, second[0].id, orphan.id}
    for job_id in (first.id, second[0].id):
        add, run = adds[job_id], runs[job_id]
        assert add.kind is SpanKind.PRODUCER and run.kind is SpanKind.CONSUMER
        assert add.context.trace_id == run.context.trace_id == request_trace
        assert run.parent is not None and run.parent.span_id == add.context.span_id
        assert add.parent is not None and add.parent.span_id == request.get_span_context().span_id
    assert runs[orphan.id].context.trace_id != request_trace
    assert runs[orphan.id].parent is None
    for job_id, span_context, parent in inner:
        assert parent is not None and parent.span_id == runs[job_id].context.span_id
        assert span_context.trace_id == runs[job_id].context.trace_id
    assert await conn.fetchval(f"select count(*) from {S}._gw_job_traces") == 0
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_trace_context_is_stored_in_a_psycopg_callers_transaction(
    db_url: str, conn: asyncpg.Connection, exporter: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    import psycopg

    provider, memory = exporter
    tracer = provider.get_tracer("test")
    producer = WorkerUtils(
        schema=S, hooks=hooks.HookRegistry().add_plugin(TracingPlugin(provider))
    )
    async with await psycopg.AsyncConnection.connect(db_url) as caller:
        with tracer.start_as_current_span("rolled back request"):
            await producer.add_job("traced", {"n": 0}, conn=caller)
        await caller.rollback()
        with tracer.start_as_current_span("web request") as request:
            added = await producer.add_job("traced", {"n": 1}, conn=caller)
        await caller.commit()
    # Only the committed job's trace context is there: it was written in the transaction.
    rows = await conn.fetch(f"select job_id, traceparent from {S}._gw_job_traces")
    assert [row["job_id"] for row in rows] == [added.id]
    assert f"{request.get_span_context().trace_id:032x}" in rows[0]["traceparent"]

    async def traced(payload: Any, ctx: context.WorkerContext) -> None:
        return None

    options = make_options(db_url).define_job(traced, "traced")
    await (await options.add_plugin(TracingPlugin(provider)).init()).run_once()
    (run,) = [s for s in memory.get_finished_spans() if s.name == "gw.run traced"]
    assert run.context.trace_id == request.get_span_context().trace_id


async def test_failed_run_span_has_error_status(
    db_url: str, conn: asyncpg.Connection, exporter: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, memory = exporter
    await add_job(conn, "bad", {}, max_attempts=2)
    options = make_options(db_url).define_job(bad, "bad").add_plugin(TracingPlugin(provider))
    await (await options.init()).run_once()
    (span,) = memory.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.status.description == "RuntimeError: nope"
    assert span.attributes is not None and span.attributes["gw.will_retry"] is True


async def test_job_log_lines_carry_the_job_fields(
    db_url: str, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = await add_job(conn, "ok", {}, queue_name="q1")
    with caplog.at_level(logging.DEBUG, "gw.worker"):
        await (await make_options(db_url).define_job(ok, "ok").init()).run_once()
    (record,) = [r for r in caplog.records if logs.fields(r).get("action") == "complete"]
    fields = logs.fields(record)
    assert fields["job_id"] == job_id and fields["task"] == "ok" and fields["queue"] == "q1"
    assert fields["attempt"] == 1 and fields["duration_ms"] >= 0
