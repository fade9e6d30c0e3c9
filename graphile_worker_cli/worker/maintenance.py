"""The jobs-table vacuum: one worker of the fleet at a time vacuums the jobs table once
enough jobs finished since the last vacuum.

Every job a worker takes leaves index entries behind (its available version's, and those of
its locked version once it is deleted) that only a VACUUM removes; until then each fetch
reads past them, and a drain of a large backlog slows down as it goes (docs/performance.md,
"cost curves"). Autovacuum does it where it runs, but by default only once a fifth of the
table is dead, looked at once a minute. So gw vacuums itself, cheaply and only when needed:

- a worker that finished jobs looks at most once a second (once every ten seconds when it
  finished only a few) at the table's statistics, one small statement;
- when the dead rows since the last vacuum reach ``jobs_vacuum_threshold`` and no vacuum of
  the table is running (gw's or autovacuum's), it claims the vacuum for the fleet
  (``queries.maintenance.CLAIM_VACUUM``) and runs ``VACUUM (SKIP_LOCKED)`` on a pooled
  connection (no connection of its own: the budget stays ``max_pg_conn + 3``), with
  ``ANALYZE`` when the statistics are stale;
- a role that may not vacuum the table (not its owner) says so once and stops looking;
  a schema without gw's migration 4 likewise.

Where autovacuum keeps up, the dead rows stay under the threshold and gw never vacuums.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import asyncpg

from graphile_worker_cli.queries import maintenance as queries
from graphile_worker_cli.worker import backoff
from graphile_worker_cli.worker.shutdown import sleep_unless_set

log = logging.getLogger("gw.worker")

CHECK_EVERY = 1.0
"""Seconds between looks at the statistics while this worker finishes many jobs."""
QUIET_CHECK_EVERY = 10.0
"""... and while it finishes only a few (fewer than CHECKS_PER_THRESHOLD-th of the
threshold in a second): a fleet of many slow workers still notices in time."""
CHECKS_PER_THRESHOLD = 200
CLAIM_LEASE = 300.0
"""Seconds after which a claim whose worker never finished (it died) no longer counts."""
RELEASE_TIMEOUT = 2.0


class JobsVacuum:
    """Vacuums the jobs table for the fleet while ``stopping`` is not set."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        worker_id: str,
        threshold: int,
        jobs_done: Callable[[], int],
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._worker_id = worker_id
        self._threshold = threshold
        self._jobs_done = jobs_done
        self.vacuums = 0
        """Vacuums this worker ran (a test observable)."""

    async def run(self, stopping: asyncio.Event) -> None:
        """Look now and then until ``stopping`` is set; a running vacuum is cancelled then."""
        seen_jobs, seen_at = self._jobs_done(), time.monotonic()
        while not await sleep_unless_set(stopping, CHECK_EVERY):
            done, since = self._jobs_done() - seen_jobs, time.monotonic() - seen_at
            if not self._worth_a_look(done, since):
                continue
            seen_jobs, seen_at = seen_jobs + done, time.monotonic()
            step = asyncio.get_running_loop().create_task(self._check_and_vacuum())
            stop = asyncio.get_running_loop().create_task(stopping.wait())
            try:
                await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
            if not step.done():
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, *backoff.TRANSIENT_ERRORS):
                    await step
                return
            try:
                keep_looking = step.result()
            except backoff.TRANSIENT_ERRORS as error:
                log.warning("vacuuming the jobs table failed (%s); will look again later",
                            str(error).strip() or type(error).__name__)
                continue
            if not keep_looking:
                return

    def _worth_a_look(self, done: int, since: float) -> bool:
        if done < 1:
            return False
        return done * CHECKS_PER_THRESHOLD >= self._threshold or since >= QUIET_CHECK_EVERY

    async def _check_and_vacuum(self) -> bool:
        """One look, and the vacuum when due; False when this worker should stop looking."""
        async with self._pool.acquire() as conn:
            try:
                row = await conn.fetchrow(
                    queries.CLAIM_VACUUM.sql(self._schema), self._worker_id, self._schema,
                    self._threshold, CLAIM_LEASE,
                )
            except asyncpg.UndefinedTableError:
                log.info(
                    "not vacuuming the jobs table: schema %s lacks gw's maintenance table "
                    "(run `gw migrate`)", self._schema,
                    extra={"gw": {"action": "vacuum_off", "reason": "not_migrated"}},
                )
                return False
            if row is None:
                return False  # no jobs table: nothing to look after
            if not row["can_vacuum"]:
                log.warning(
                    "not vacuuming the jobs table: this database role does not own "
                    "%s._private_jobs, so only autovacuum (or its owner) can remove the "
                    "entries finished jobs leave in its indexes; see docs/operations.md, "
                    "\"Big queues\" (set jobs_vacuum_threshold = 0 to silence this)",
                    self._schema,
                    extra={"gw": {"action": "vacuum_off", "reason": "not_owner"}},
                )
                return False
            if row["claimed"]:
                await self._vacuum(conn, dead_rows=row["dead_rows"], analyze=row["analyze"])
        return True

    async def _vacuum(self, conn: asyncpg.Connection, *, dead_rows: int, analyze: bool) -> None:
        statement = queries.VACUUM_ANALYZE_JOBS if analyze else queries.VACUUM_JOBS
        started = time.monotonic()
        try:
            await conn.execute(statement.sql(self._schema))
            await conn.execute(
                queries.FINISH_VACUUM.sql(self._schema), self._worker_id, self._schema
            )
        except BaseException:
            await self._release()
            raise
        self.vacuums += 1
        seconds = time.monotonic() - started
        log.info(
            "vacuumed the jobs table%s: %d dead rows, %.2fs",
            " and analyzed it" if analyze else "", dead_rows, seconds,
            extra={"gw": {"action": "vacuum", "dead_rows": dead_rows, "analyze": analyze,
                          "seconds": round(seconds, 3)}},
        )

    async def _release(self) -> None:
        """Give the claim up at once (on another connection: this one may be the thing that
        failed), so the next worker need not wait for the lease."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(RELEASE_TIMEOUT):
                async with self._pool.acquire() as conn:
                    await conn.execute(queries.RELEASE_VACUUM.sql(self._schema), self._worker_id)
