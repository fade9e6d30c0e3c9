"""``CancelWatcher``: how a worker learns that someone cancelled a job it holds.

``cancel_jobs`` records a request in ``_gw_cancel_requests`` for each running job and
notifies ``gw:cancel``. The watcher looks in that table (``worker.store.cancel_requests``)
on each notification, each time the listen connection is
(re)established (notifications may have been missed meanwhile), every
``CHECK_EVERY_POLLS`` poll intervals whatever happens (a worker whose LISTEN delivers
nothing, behind a transaction pooler), and once more before shutdown hands running jobs
back. Each job it finds is handed to ``JobRunner.cancel``. It also keeps ``pending``,
whether the table may have rows at all: only then does the fetch loop check each fetched
batch against it (a job another worker let go without acting on its request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from graphile_worker_cli.job_input import CANCELLED_ERROR
from graphile_worker_cli.worker import backoff, store
from graphile_worker_cli.worker.running import JobRunner

log = logging.getLogger("gw.worker")

CHECK_EVERY_POLLS = 5
"""The periodic look, in poll intervals (10 s with the default poll_interval of 2 s)."""

FINAL_CHECK_TIMEOUT = 2.0
"""How long shutdown waits for its last look before handing jobs back regardless."""


class CancelWatcher:
    """Finds cancel requests for this worker's jobs and has the runner act on them."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        worker_id: str,
        runner: JobRunner,
        *,
        interval: float,
        history: bool = False,
    ) -> None:
        self._pool = pool
        self._history = history
        self._schema = schema
        self._worker_id = worker_id
        self._runner = runner
        self._interval = interval
        self._wake = asyncio.Event()
        self.pending = True
        """Whether ``_gw_cancel_requests`` may have rows: then each fetch checks its jobs
        against it (``FetchLoop``). Set by a notification or a new listen connection,
        updated by each look: False only once a look found the table empty."""
        self._notices = 0

    # -- from the listener (synchronous callbacks) ------------------------------------------
    def notified(self, job_ids: list[int] | None) -> None:
        """A ``gw:cancel`` notification (``job_ids`` None when it did not name them). Every
        worker looks, not only one holding a named job: a job whose task failed just before
        the request is unlocked now, waiting for its retry, and the look fails it for good
        before it can run again."""
        self.pending = True
        self._notices += 1
        self._wake.set()

    def connected(self) -> None:
        """The listen connection is (re)established: requests may have been missed."""
        self.pending = True
        self._notices += 1
        self._wake.set()

    # -- looking ----------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        """Look on every wake-up and every ``interval`` seconds until ``stopping``."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            if stopping.is_set():
                return
            try:
                await self.check()
            except (*backoff.TRANSIENT_ERRORS, asyncpg.PostgresError) as error:
                log.warning(
                    "could not look for cancelled jobs (%s); looking again in %gs",
                    error, self._interval, extra={"gw": {"action": "cancel_check_failed"}},
                )

    async def check(self) -> int:
        """Look once; returns how many of this worker's jobs were cancelled."""
        notices = self._notices
        async with self._pool.acquire() as conn:
            job_ids, left = await store.cancel_requests(
                conn, self._schema, self._worker_id, CANCELLED_ERROR, history=self._history
            )
        # A notification during the look may be of a request it did not see.
        self.pending = bool(left) or self._notices != notices
        for job_id in job_ids:
            self._runner.cancel(job_id)
        return len(job_ids)

    async def final_check(self) -> None:
        """The last look before shutdown hands running jobs back: a cancelled job must be
        failed, not handed back to run again."""
        try:
            await asyncio.wait_for(self.check(), FINAL_CHECK_TIMEOUT)
        except (TimeoutError, *backoff.TRANSIENT_ERRORS, asyncpg.PostgresError) as error:
            log.warning("could not look for cancelled jobs before stopping (%s)", error)
