"""gw's worker and the Node.js reference's worker share one database: each runs the
other's jobs, and together they drain named queues without ever running a job twice or
two jobs of one queue at once."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import context
from graphile_worker_cli.worker import WorkerOptions
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers import reference
from tests.helpers.database import count, listening
from tests.helpers.waiting import wait_until
from tests.helpers.worker import make_options, no_jobs

pytestmark = pytest.mark.interop

S = "graphile_worker"

PAYLOADS: list[Any] = [
    {"text": "héllo ✓ \"quoted\" \\ back", "n": 12345678901234, "f": 1.5, "none": None},
    {"nested": {"list": [1, [2, [3]], {"deep": True}], "empty": {}, "arr": []}},
    [1, "two", {"three": 3}],
    "just a string",
    42,
]

NODE_ADD_JOBS = """\
import { quickAddJob } from %(module)s;
const payloads = JSON.parse(process.argv[3]);
for (const payload of payloads) {
  await quickAddJob({ connectionString: process.argv[2] }, "from_node", payload);
}
"""

# A CommonJS reference task: records its payload, as JSON text, in the table `seen`.
RECORD_TASK = """\
module.exports = async (payload, helpers) => {
  await helpers.query("insert into seen (job_id, payload) values ($1, $2)",
                      [helpers.job.id, JSON.stringify(payload)]);
};
"""

# The reference's half of the shared drain: records when each job started and ended.
DRAIN_TASK = """\
module.exports = async (payload, helpers) => {
  const { rows } = await helpers.query("select clock_timestamp() as t");
  await new Promise((resolve) => setImmediate(resolve));
  await helpers.query(
    "insert into runs (job_id, queue, who, started, ended) "
    + "values ($1, $2, 'node', $3, clock_timestamp())",
    [helpers.job.id, payload.q, rows[0].t]);
};
"""


def options(url: str, **overrides: Any) -> WorkerOptions:
    values: dict[str, Any] = {
        "database_url": url, "listen_os_shutdown_signals": False, "migrate": False,
        "poll_interval": 0.2,
    }
    values.update(overrides)
    return WorkerOptions(**values)


async def test_jobs_queued_by_the_reference_run_on_gw_with_identical_payloads(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    module = (reference.NODE_MODULES / "graphile-worker" / "dist" / "index.js").as_uri()
    script = tmp_path / "add.mjs"
    script.write_text(NODE_ADD_JOBS % {"module": json.dumps(module)})
    result = await asyncio.to_thread(
        subprocess.run, ["node", str(script), db_url, json.dumps(PAYLOADS)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    received: list[Any] = []

    async def from_node(payload: Any, ctx: context.WorkerContext) -> None:
        received.append(payload)

    worker = await options(db_url).define_job(from_node, "from_node").init()
    await worker.run_once()
    key = json.dumps
    assert sorted(received, key=key) == sorted(PAYLOADS, key=key)
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0


async def test_jobs_queued_by_gw_run_on_the_reference(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await conn.execute("create table seen (job_id bigint primary key, payload text)")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "from_gw.js").write_text(RECORD_TASK)
    async with await WorkerUtils.connect(db_url) as worker_utils:
        for payload in PAYLOADS:
            await worker_utils.add_job("from_gw", payload)
    result = await asyncio.to_thread(reference.run_reference, db_url, "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = await conn.fetch("select payload from seen")
    key = json.dumps
    assert sorted((json.loads(r["payload"]) for r in rows), key=key) == sorted(PAYLOADS, key=key)
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0


async def test_gw_and_the_reference_drain_named_queues_together(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    total, queues = 5000, 20
    await conn.execute(
        "create table runs (job_id bigint, queue text, who text, "
        "started timestamptz, ended timestamptz)"
    )
    # The jobs wait in the future until both workers are seen running: whichever starts
    # first must not drain them all alone.
    await conn.execute(
        f"""select {S}.add_jobs(array_agg(row('drain', json_build_object('q', 'q' || (i % $2)),
                'q' || (i % $2), now() + interval '1 hour', null, null, null,
                null)::{S}.job_spec))
            from generate_series(1, $1::int) as i""",
        total, queues,
    )
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "drain.js").write_text(DRAIN_TASK)

    async def drain(payload: Any, ctx: context.WorkerContext) -> None:
        async with ctx.pool.acquire() as c:
            started = await c.fetchval("select clock_timestamp()")
            await asyncio.sleep(0)
            await c.execute(
                "insert into runs (job_id, queue, who, started, ended) "
                "values ($1, $2, 'gw', $3, clock_timestamp())",
                ctx.job_id, payload["q"], started,
            )

    node = await reference.start_reference(
        f"{db_url}?application_name={NODE_SIDE}", "--jobs", "10", "--poll-interval", "100",
        cwd=tmp_path,
    )
    worker = await options(
        f"{db_url}?application_name={GW_SIDE}", concurrency=10, max_pg_conn=12
    ).define_job(drain, "drain").init()
    runner = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: listening(conn, NODE_SIDE), 60)
        await wait_until(lambda: listening(conn, GW_SIDE), 60)
        await wait_until(lambda: registered(conn, worker.worker_id), 60)
        await conn.execute(f"update {S}._private_jobs set run_at = now()")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 55
        while await conn.fetchval(f"select count(*) from {S}._private_jobs") > 0:
            assert loop.time() < deadline, "the two workers did not drain the queues in time"
            assert node.returncode is None and not runner.done()
            await asyncio.sleep(0.1)
    finally:
        worker.request_shutdown()
        if node.returncode is None:
            node.send_signal(signal.SIGTERM)
        node_output, _ = await asyncio.wait_for(node.communicate(), 30)
        await asyncio.wait_for(runner, 30)
    # The reference re-raises the signal on itself after its graceful shutdown.
    assert node.returncode in (0, -signal.SIGTERM), node_output.decode()[-2000:]

    counts = await conn.fetchrow(
        "select count(*) as n, count(distinct job_id) as distinct_jobs, "
        "count(*) filter (where who = 'gw') as gw, "
        "count(*) filter (where who = 'node') as node from runs"
    )
    assert (counts["n"], counts["distinct_jobs"]) == (total, total)
    assert counts["gw"] > 0 and counts["node"] > 0, dict(counts)
    overlaps = await conn.fetchval(
        """select count(*) from runs as a join runs as b
             on a.queue = b.queue and a.job_id < b.job_id
            and a.started < b.ended and b.started < a.ended"""
    )
    assert overlaps == 0
    assert await conn.fetchval(
        f"select count(*) from {S}._private_job_queues where locked_by is not null"
    ) == 0


GW_SIDE, NODE_SIDE = "gw_side", "node_side"
"""The application names the two workers' connections carry, to tell their sessions apart."""


async def registered(conn: asyncpg.Connection, worker_id: str) -> bool:
    found: bool = await conn.fetchval(
        f"select exists (select 1 from {S}._gw_workers where id = $1)", worker_id
    )
    return found


@pytest.mark.interop
async def test_with_the_reference_a_local_queue_keeps_named_queues_serial(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    total, queues = 1500, 12
    await conn.execute("create table runs (job_id bigint, queue text, who text, "
                       "started timestamptz, ended timestamptz)")
    # The jobs wait in the future until both workers are seen running: whichever starts
    # first must not get them all.
    await conn.execute(
        # Every fifth job has no named queue (and q = null in its payload).
        f"""select {S}.add_jobs(array_agg(row('drain', json_build_object('q', q), q,
                now() + interval '1 hour', null, null, null, null)::{S}.job_spec))
            from (select case when i % 5 = 0 then null else 'q' || (i % $2) end as q
                    from generate_series(1, $1::int) as i) as s""",
        total, queues,
    )
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "drain.js").write_text(DRAIN_TASK)

    async def drain(payload: Any, ctx: context.WorkerContext) -> None:
        async with ctx.pool.acquire() as c:
            started = await c.fetchval("select clock_timestamp()")
            await asyncio.sleep(0)
            await c.execute("insert into runs (job_id, queue, who, started, ended) "
                            "values ($1, $2, 'gw', $3, clock_timestamp())",
                            ctx.job_id, payload["q"], started)

    node = await reference.start_reference(
        f"{db_url}?application_name={NODE_SIDE}", "--jobs", "6", "--poll-interval", "100",
        cwd=tmp_path,
    )
    options = make_options(f"{db_url}?application_name={GW_SIDE}", concurrency=8,
                           max_pg_conn=12, local_queue_size=64, complete_job_batch_delay=0.005)
    worker = await options.define_job(drain, "drain").init()
    runner = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: listening(conn, NODE_SIDE), 60)
        await wait_until(lambda: listening(conn, GW_SIDE), 60)
        await wait_until(lambda: registered(conn, worker.worker_id), 60)
        assert await count(conn, "select count(*) from runs") == 0
        await conn.execute(f"update {S}._private_jobs set run_at = now()")
        await wait_until(lambda: no_jobs(conn), 60)
    finally:
        worker.request_shutdown()
        if node.returncode is None:
            node.send_signal(signal.SIGTERM)
        await asyncio.wait_for(node.communicate(), 30)
        await asyncio.wait_for(runner, 30)
    counts = await conn.fetchrow(
        "select count(*) as n, count(distinct job_id) as jobs, "
        "count(*) filter (where who = 'gw') as gw, count(*) filter (where who = 'node') as node "
        "from runs")
    assert (counts["n"], counts["jobs"]) == (total, total)
    assert counts["gw"] > 0 and counts["node"] > 0, dict(counts)
    overlaps = await conn.fetchval(
        """select count(*) from runs as a join runs as b
             on a.queue = b.queue and a.job_id < b.job_id
            and a.started < b.ended and b.started < a.ended""")
    assert overlaps == 0
