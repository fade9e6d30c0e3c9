"""Add one job on a connection of its own: what ``gw add-job`` and ``quick_add_job`` run.

One statement (``queries.jobs.ADD_JOB_CHECKED``) reads the schema's migration ledger and
calls the schema's ``add_job`` only when gw can work with that schema, so the usual case
costs one statement where ``check_schema`` and then ``add_job`` cost four. When the
statement adds nothing, or the server refuses it (no such schema, a function of another
shape in a newer one), ``migrate.check_schema`` runs to say what is wrong in one line; the
refused statement wrote nothing. If the check finds nothing wrong, the job is added as it
was before this statement: the schema's ``add_job`` on its own.

Only what this path runs is imported: no pool, no sans-IO operations, no drivers layer
(``gw add-job`` starts in the time of its imports).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from graphile_worker_cli import db, job
from graphile_worker_cli.errors import DatabaseError, JobKeyRaceError
from graphile_worker_cli.protocol import LATEST_MIGRATION
from graphile_worker_cli.queries import jobs as queries

if TYPE_CHECKING:
    from graphile_worker_cli import config

KEY_RACE_RETRIES = 5
"""As ``WorkerUtils.key_race_retries``: tries of a keyed job whose row was locked between
``add_job``'s two steps (it then returns a row of nulls)."""


async def add_prepared_job(
    settings: config.Settings, identifier: str, payload_json: str, spec: job.JobSpec
) -> job.Job:
    """Add one job (arguments already checked: ``job.check_identifier``, ``job.check_spec``)
    to the database and schema of ``settings``; the embedded server when none is named."""
    url = settings.database_url or _environment_url()
    if url is None:
        from graphile_worker_cli import embedded

        async with embedded.database_url(settings) as embedded_url:
            return await _add(embedded_url, settings, identifier, payload_json, spec)
    return await _add(url, settings, identifier, payload_json, spec)


def _environment_url() -> str | None:
    from graphile_worker_cli import conninfo

    return conninfo.url_from_environment()


async def _add(
    url: str, settings: config.Settings, identifier: str, payload_json: str,
    spec: job.JobSpec,
) -> job.Job:
    schema = settings.schema_name
    conn = await db.connect(url, **db.statement_cache(settings.prepared_statements))
    try:
        with db.database_errors(schema):
            return await _add_on(conn, schema, identifier, payload_json, spec)
    finally:
        await conn.close()


async def _add_on(
    conn: asyncpg.Connection, schema: str, identifier: str, payload_json: str,
    spec: job.JobSpec,
) -> job.Job:
    args = queries.add_job_args(identifier, payload_json, spec)
    checked = False
    tries = KEY_RACE_RETRIES if spec.job_key is not None else 1
    for _ in range(tries):
        if checked:
            row = await conn.fetchrow(queries.ADD_JOB.sql(schema), *args)
        else:
            try:
                row = await conn.fetchrow(
                    queries.ADD_JOB_CHECKED.sql(schema), *args, LATEST_MIGRATION
                )
            except asyncpg.PostgresError:
                # Nothing was written. A schema gw cannot use is named as such; one it
                # can use gets the job as before this statement: the check done, the
                # schema's add_job on its own (whose error, if any, is then the one told).
                await _check_schema(conn, schema)
                checked = True
                row = await conn.fetchrow(queries.ADD_JOB.sql(schema), *args)
            else:
                if row is None or not row["schema_ok"]:
                    await _check_schema(conn, schema)
                    raise DatabaseError(
                        f"the schema {schema!r} changed while adding the job; retry"
                    )
        if row is not None and row["id"] is not None:
            return await _job(conn, schema, row, identifier, spec)
    if spec.job_key is None:
        raise DatabaseError(f"add_job for task {identifier!r} returned no job")
    raise JobKeyRaceError(
        f"add_job for task {identifier!r} with job key {spec.job_key!r} returned no job "
        f"{tries} times: a worker kept locking that job at the same moment; retry later"
    )


async def _check_schema(conn: asyncpg.Connection, schema: str) -> None:
    from graphile_worker_cli import migrate

    await migrate.check_schema(conn, schema)


async def _job(
    conn: asyncpg.Connection, schema: str, row: Any, identifier: str, spec: job.JobSpec
) -> job.Job:
    if spec.job_key_mode is job.JobKeyMode.UNSAFE_DEDUPE and row["revision"] > 0:
        # The job already there is returned untouched: its task and queue may be other
        # ones than those asked for (they existed before this statement, so it could
        # have joined them, but the usual case should not pay for the join).
        queue_ids = [row["job_queue_id"]] if row["job_queue_id"] is not None else []
        names = {
            (found["kind"], found["id"]): found["name"]
            for found in await conn.fetch(
                queries.RESOLVE_NAMES.sql(schema), [row["task_id"]], queue_ids
            )
        }
        return job.job_from_record(
            row, task_identifier=names.get(("task", row["task_id"]), ""),
            queue_name=names.get(("queue", row["job_queue_id"])),
        )
    return job.job_from_record(row, task_identifier=identifier, queue_name=spec.queue_name)
