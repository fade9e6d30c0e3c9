"""Cron's rows in the database: which crontab items are known, and the exactly-once
claim-and-add of a minute's jobs (statements in ``queries.cron``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from graphile_worker_cli import db, js_json
from graphile_worker_cli.errors import DatabaseError
from graphile_worker_cli.queries import cron as queries

if TYPE_CHECKING:
    from graphile_worker_cli import config


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


async def fetch_known_crontabs(
    conn: asyncpg.Connection | asyncpg.Pool, schema: str, identifiers: Sequence[str] | None = None
) -> list[KnownCrontab]:
    """Rows for these ids (all rows when ``identifiers`` is None), ordered by id."""
    wanted = None if identifiers is None else list(identifiers)
    rows = await conn.fetch(queries.KNOWN_CRONTABS.sql(schema), wanted)
    return [KnownCrontab(r["identifier"], r["known_since"], r["last_execution"]) for r in rows]


async def known_crontabs(settings: config.Settings) -> list[KnownCrontab]:
    """``gw cron list``: every known crontab row of the database the settings name (the
    embedded one when none is). Raises ``DatabaseError`` when the schema has no tables."""
    from graphile_worker_cli import embedded  # settings-level: the config stack on demand

    async with (
        embedded.database_url(settings) as url,
        db.connection(url, **db.statement_cache(settings.prepared_statements)) as conn,
    ):
        try:
            return await fetch_known_crontabs(conn, settings.schema_name)
        except asyncpg.UndefinedTableError:
            raise DatabaseError(
                f"schema {settings.schema_name!r} has no Graphile Worker tables; "
                "run gw migrate (or start a worker) first"
            ) from None


async def register_crontabs(
    conn: asyncpg.Connection | asyncpg.Pool,
    schema: str,
    identifiers: Sequence[str],
    known_since: datetime,
) -> None:
    """Make these ids known from ``known_since`` on; ids already known are left alone."""
    await conn.execute(queries.REGISTER_CRONTABS.sql(schema), list(identifiers), known_since)


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
        queries.SCHEDULE_CRON_JOBS.sql(schema),
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
