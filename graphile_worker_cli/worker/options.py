"""``WorkerOptions``: a ``WorkerConfig`` that can build its worker.

``await options.init()`` opens the pool, migrates (unless told not to), registers the task
identifiers and returns a ready ``Worker``; nothing starts running before ``Worker.run()``.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import asyncpg

from graphile_worker_cli import conninfo, db, migrate
from graphile_worker_cli import hooks as gw_hooks
from graphile_worker_cli.errors import ConfigError
from graphile_worker_cli.worker import store
from graphile_worker_cli.worker.config import RunningWorker, SideTask, WorkerConfig
from graphile_worker_cli.worker.worker import Worker

log = logging.getLogger("gw.worker")

__all__ = ["RunningWorker", "SideTask", "WorkerConfig", "WorkerOptions", "new_worker_id"]


def new_worker_id() -> str:
    """A ``locked_by`` value unique to this process, like the reference's ``pool-<hex>``."""
    return f"gw-{secrets.token_hex(9)}"


class WorkerOptions(WorkerConfig):
    """Everything a worker needs (the fields of ``WorkerConfig``), and ``init()``."""

    async def init(self) -> Worker:
        """Open the pool, migrate, register task identifiers; return the worker."""
        if self.pg_pool is None and not self.database_url:
            self.database_url = conninfo.url_from_environment()  # as the reference does
        self.validate()
        owns_pool = self.pg_pool is None
        pool = self.pg_pool
        if pool is None:
            url = self.database_url
            if url is None:
                raise ConfigError("no database: give database_url or pg_pool")
            kwargs: dict[str, Any] = {}
            if not self.prepared_statements:
                kwargs["statement_cache_size"] = 0
            pool = await db.create_pool(
                url, min_size=1, max_size=self.max_pg_conn, **kwargs
            )
        try:
            async with pool.acquire() as conn:
                if self.migrate:
                    await migrate.migrate(conn, self.schema)
                else:
                    await migrate.check_schema(conn, self.schema)
                task_ids = await store.ensure_tasks(
                    conn, self.schema, self.tasks.identifiers()
                )
                worker_id = self.worker_id or new_worker_id()
                if self.worker_recovery:
                    await _register_for_recovery(self, conn, worker_id, pool.get_max_size())
                if self.history_retention:
                    await _check_history_tables(self, conn)
        except BaseException:
            if owns_pool:
                await pool.close()
            raise
        worker = Worker(
            self, pool, task_ids=task_ids, worker_id=worker_id,
            owns_pool=owns_pool,
        )
        if self.hooks.active:
            await self.hooks.emit(gw_hooks.WorkerInit, gw_hooks.WorkerInitContext(
                worker_id, self.schema, self.concurrency, pool
            ))
        return worker


async def _register_for_recovery(
    options: WorkerConfig, conn: asyncpg.Connection, worker_id: str, pool_size: int
) -> None:
    """Register before the first fetch, so no job is ever locked by an unregistered gw id
    (those keep the 4-hour rule). Without the registry table, run without recovery."""
    from graphile_worker_cli import recovery

    if not await recovery.registry_exists(conn, options.schema):
        log.warning(
            "schema %s has no gw worker registry (run `gw migrate`): dead-worker recovery "
            "is off for this worker", options.schema,
        )
        options.worker_recovery = False
        return
    await recovery.register_worker(
        conn, options.schema, worker_id,
        heartbeat_interval=options.heartbeat_interval, tasks=options.tasks.identifiers(),
        metadata={"connections": options.connection_budget(pool_size)},
    )


async def _check_history_tables(options: WorkerConfig, conn: asyncpg.Connection) -> None:
    """History is written by the settling statements: without its table (a schema not
    migrated by this gw, with ``migrate`` off) every settle would fail, so run without."""
    if not await store.history_tables_exist(conn, options.schema):
        log.warning(
            "schema %s has no gw job history table (run `gw migrate`): job history is off "
            "for this worker", options.schema,
        )
        options.history_retention = None
