"""SQL for cron: the known-crontab registry and the exactly-once scheduling statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from graphile_worker_cli import db, js_json


@dataclass(frozen=True, slots=True)
class KnownCrontab:
    """A row of ``_private_known_crontabs``."""

    identifier: str
    known_since: datetime
    last_execution: datetime | None


@dataclass(frozen=True, slots=True)
class CronJobRequest:
    """One job to add for one crontab item at one due time."""

    identifier: str  # the item's id: the known_crontabs key
    task_identifier: str
    payload: dict[str, Any]
    queue_name: str | None
    max_attempts: int | None
    job_key: str | None
    priority: int | None
    job_key_mode: str | None


def _known_crontabs(schema: str) -> str:
    return f"{db.escape_identifier(schema)}._private_known_crontabs"


async def fetch_known_crontabs(
    conn: asyncpg.Connection | asyncpg.Pool, schema: str, identifiers: Sequence[str] | None = None
) -> list[KnownCrontab]:
    """Rows for these ids (all rows when ``identifiers`` is None), ordered by id."""
    table = _known_crontabs(schema)
    if identifiers is None:
        rows = await conn.fetch(
            f"select identifier, known_since, last_execution from {table} order by identifier"
        )
    else:
        rows = await conn.fetch(
            f"select identifier, known_since, last_execution from {table} "
            "where identifier = any($1::text[]) order by identifier",
            list(identifiers),
        )
    return [KnownCrontab(r["identifier"], r["known_since"], r["last_execution"]) for r in rows]


async def register_crontabs(
    conn: asyncpg.Connection | asyncpg.Pool,
    schema: str,
    identifiers: Sequence[str],
    known_since: datetime,
) -> None:
    """Make these ids known from ``known_since`` on; ids already known are left alone.

    $1 ids text[], $2 known_since timestamptz.
    """
    await conn.execute(
        f"insert into {_known_crontabs(schema)} (identifier, known_since) "
        "select unnest($1::text[]), $2::timestamptz on conflict (identifier) do nothing",
        list(identifiers),
        known_since,
    )


def _schedule_sql(schema: str) -> str:
    # One statement, so claiming the minute and adding its jobs commit together: the
    # upsert moves last_execution forward only, and only the ids it moved get a job.
    quoted = db.escape_identifier(schema)
    return f"""
with wanted as (
  select *
  from unnest($1::text[], $2::text[], $3::json[], $4::text[], $5::int[], $6::text[],
              $7::int[], $8::text[])
    with ordinality as w(identifier, task, payload, queue_name, max_attempts, job_key,
                         priority, job_key_mode, position)
),
claimed as (
  insert into {quoted}._private_known_crontabs as known (identifier, known_since, last_execution)
  select identifier, $9::timestamptz, $9::timestamptz from wanted
  on conflict (identifier) do update
    set last_execution = excluded.last_execution
    where known.last_execution is null or known.last_execution < excluded.last_execution
  returning known.identifier
)
select added.identifier, (added.job).id as job_id
from (
  -- add_job sits in the select list, after the join: it runs only for claimed ids
  -- (a volatile target list also keeps this subquery from being flattened).
  select wanted.identifier, {quoted}.add_job(
    wanted.task, wanted.payload, wanted.queue_name, $9::timestamptz, wanted.max_attempts,
    wanted.job_key, wanted.priority, null::text[], wanted.job_key_mode
  ) as job
  from wanted
  join claimed on claimed.identifier = wanted.identifier
  order by wanted.position
) as added
"""


async def schedule_cron_jobs(
    conn: asyncpg.Connection | asyncpg.Pool,
    schema: str,
    requests: Sequence[CronJobRequest],
    ts: datetime,
) -> dict[str, int]:
    """Claim minute ``ts`` for each request's id and add its job, exactly once across all
    workers. Returns ``{id: job_id}`` for the ids this call claimed (the others were
    already scheduled for ``ts`` or later by someone else)."""
    if not requests:
        return {}
    rows = await conn.fetch(
        _schedule_sql(schema),
        [r.identifier for r in requests],
        [r.task_identifier for r in requests],
        [js_json.stringify(r.payload) for r in requests],
        [r.queue_name for r in requests],
        [r.max_attempts for r in requests],
        [r.job_key for r in requests],
        [r.priority for r in requests],
        [r.job_key_mode for r in requests],
        ts,
    )
    return {row["identifier"]: row["job_id"] for row in rows}
