"""Big backlogs, loaded fast: the rows ``add_jobs`` would create, written by one
``INSERT ... SELECT generate_series`` per chunk instead of a function call per chunk.

``add_jobs`` (no job key, no flags) inserts the task and queue rows it lacks, then one job
row per spec with the columns it sets (queue, task, payload, run_at, max_attempts, key,
priority, flags) and every other column at its default. ``load`` does exactly that, so a
worker cannot tell the difference; ``tests/interop/test_bench_scale.py`` compares the rows of both.
It sends no ``jobs:insert`` notification: backlogs are loaded before any worker starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from bench import profiles
from graphile_worker_cli import db

S = db.escape_identifier(profiles.SCHEMA)
CHUNK = 250_000  # rows per statement: bounded memory and statement time at a million jobs
DEFAULT_PAYLOAD_SQL = "json_build_object('i', i)"


@dataclass(frozen=True)
class Backlog:
    """``jobs`` jobs of task ``identifier``; spread over ``queues`` named queues in turn
    (0: no named queue), due ``delay_seconds`` from now (0: runnable at once)."""

    jobs: int
    identifier: str = "bench_noop"
    queues: int = 0
    delay_seconds: float = 0.0
    payload_sql: str = DEFAULT_PAYLOAD_SQL  # an SQL expression of i, the job's number


_ENSURE_TASK = (
    f"insert into {S}._private_tasks (identifier) select $1::text"
    f" where not exists (select 1 from {S}._private_tasks as t where t.identifier = $1::text)"
    " on conflict do nothing"
)
_ENSURE_QUEUES = (
    f"insert into {S}._private_job_queues (queue_name)"
    " select 'bench_q' || n from generate_series(1, $1::int) as n"
    f" where not exists (select 1 from {S}._private_job_queues as q"
    "  where q.queue_name = 'bench_q' || n)"
    " order by n on conflict do nothing"
)


def _insert_sql(backlog: Backlog) -> str:
    # Jobs i = $2..$3; job i goes to queue ((i - 1) % queues) + 1, so every batch a worker
    # fetches in (priority, run_at) order spans as many queues as it can.
    queue = "null::int"
    join = ""
    if backlog.queues:
        queue = "q.id"
        join = (
            f" join {S}._private_job_queues as q"
            f" on q.queue_name = 'bench_q' || (((i - 1) % {backlog.queues}) + 1)"
        )
    run_at = "now()"
    if backlog.delay_seconds:
        run_at = f"now() + {float(backlog.delay_seconds)!r} * interval '1 second'"
    return (
        f"insert into {S}._private_jobs"
        " (job_queue_id, task_id, payload, run_at, max_attempts, key, priority, flags)"
        f" select {queue}, t.id, {backlog.payload_sql}, {run_at}, 25, null, 0, null"
        f" from generate_series($2::bigint, $3::bigint) as i"
        f" join {S}._private_tasks as t on t.identifier = $1::text{join}"
        " order by i"
    )


async def load(conn: asyncpg.Connection, backlog: Backlog, first: int = 1) -> None:
    """Insert the backlog's jobs (numbered ``first`` onwards) and the rows they need."""
    await conn.execute(_ENSURE_TASK, backlog.identifier)
    if backlog.queues:
        await conn.execute(_ENSURE_QUEUES, backlog.queues)
    statement = _insert_sql(backlog)
    last = first + backlog.jobs - 1
    for start in range(first, last + 1, CHUNK):
        await conn.execute(statement, backlog.identifier, start, min(last, start + CHUNK - 1))
