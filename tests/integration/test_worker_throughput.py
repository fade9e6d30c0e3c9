"""Throughput settings on a real database: prepared statements on and off (observed in
PostgreSQL's pg_prepared_statements), fetched jobs carry every column of their row."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import context
from tests.helpers.worker import add_job, make_options


@pytest.mark.parametrize("prepared", [True, False])
async def test_prepared_statements_switch(
    db_url: str, conn: asyncpg.Connection, prepared: bool
) -> None:
    counts: list[int] = []

    async def probe(payload: Any, ctx: context.WorkerContext) -> None:
        rows = await ctx.query("select count(*) as n from pg_prepared_statements")
        counts.append(rows[0]["n"])

    await add_job(conn, "probe", {})
    # One connection: the fetch ran on the very session the probe looks at.
    options = make_options(db_url, max_pg_conn=1, worker_recovery=False,
                           prepared_statements=prepared)
    worker = await options.define_job(probe, "probe").init()
    await worker.run_once()
    assert len(counts) == 1
    assert (counts[0] > 0) is prepared


async def test_fetched_jobs_carry_every_column_of_their_row(conn: asyncpg.Connection) -> None:
    """The fetch builds Jobs by position (the hot path); each field must still come from the
    column of the same name."""
    from datetime import UTC, datetime

    from graphile_worker_cli import job as jobs
    from graphile_worker_cli.worker import store

    run_at = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    job_id = await add_job(
        conn, "fields_task", {"n": 1}, queue_name="q1", run_at=run_at, max_attempts=7,
        job_key="k1", priority=-3, flags=["a", "b"],
    )
    task_ids = await store.ensure_tasks(conn, "graphile_worker", ["fields_task"])
    fetched = await store.fetch_jobs(
        conn, "graphile_worker", "w-fields", list(task_ids.values()), 10,
        task_identifiers={v: k for k, v in task_ids.items()},
    )
    row = await conn.fetchrow(
        "select j.*, t.identifier as task_identifier, q.queue_name"
        " from graphile_worker._private_jobs j"
        " join graphile_worker._private_tasks t on t.id = j.task_id"
        " left join graphile_worker._private_job_queues q on q.id = j.job_queue_id"
        " where j.id = $1", job_id,
    )
    assert [job.id for job in fetched] == [job_id]
    assert fetched[0] == jobs.job_from_record(row)
    assert (fetched[0].queue_name, fetched[0].key, fetched[0].flags) == ("q1", "k1",
                                                                          {"a": True, "b": True})
    assert (fetched[0].priority, fetched[0].max_attempts, fetched[0].attempts) == (-3, 7, 1)
    assert fetched[0].locked_by == "w-fields" and fetched[0].locked_at is not None
