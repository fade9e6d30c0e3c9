"""The cron scheduler: register, backfill, then every minute since start, exactly once per fleet.

On (re)start every item's id is looked up in ``_private_known_crontabs``. Unknown ids are
registered as known from now and never backfilled. Known ids are backfilled over their
``fill`` period (the downtime before this start), never before their last execution (or
known_since). Then, as the reference does, every minute from the start on is scheduled
exactly once: a timer that fires early is waited out, one that fires late (a stalled loop,
a suspended machine, a clock jumping forward, a slow backfill) schedules each minute it
missed, in order, as an ordinary tick. A clock that jumps backwards is waited out: a minute
is never scheduled twice, here or anywhere, because claiming it moves ``last_execution``
forward only. After a database error the scheduler starts over (registration and
backfill) and resumes at the first minute it had not scheduled.

One statement claims every item due in a minute. If the database refuses it because of
one item's job (a constraint, a value out of range, an error raised by ``add_job``), each
item is claimed on its own and only the refused ones are skipped, with an error in the log.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from graphile_worker_cli import hooks, job
from graphile_worker_cli.cron import store as cron_store
from graphile_worker_cli.cron.clock import Clock, SystemClock
from graphile_worker_cli.cron.matcher import ONE_MINUTE, ceil_minute, due_minutes, floor_minute
from graphile_worker_cli.cron.parser import check_unique_ids
from graphile_worker_cli.cron.types import Crontab
from graphile_worker_cli.errors import (
    CrontabError,
    JobScheduleFailedError,
    JobScheduleSkippedError,
)

log = logging.getLogger("gw.cron")

RETRY_MIN_SECONDS = 0.2
RETRY_MAX_SECONDS = 60.0
RETRY_MULTIPLIER = 1.5

# Errors that mean a bug in gw rather than trouble with the database: these propagate.
# Everything else (driver errors, including asyncpg's internal client errors after a
# dropped connection, network errors, timeouts) restarts the scheduler after a backoff.
_BUGS = (TypeError, AttributeError, NameError, AssertionError, LookupError, CrontabError)

# SQLSTATE classes of a refusal of the values themselves (data exception, integrity
# constraint, an error raised by a function, a program limit, the schema's own GWB... bad
# input codes): another item may well pass.
_REFUSAL_CLASSES = frozenset({"22", "23", "P0", "54", "GW"})


def _is_refusal(error: asyncpg.PostgresError) -> bool:
    return str(getattr(error, "sqlstate", "") or "")[:2] in _REFUSAL_CLASSES


def format_ts(ts: datetime) -> str:
    """A due time the way the reference writes ``_cron.ts``: 2030-01-01T08:00:00.000Z."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def cron_payload(item: Crontab, ts: datetime, backfilled: bool) -> dict[str, Any]:
    """The item's payload plus ``_cron: {ts, backfilled}``."""
    return {**(item.payload or {}), "_cron": {"ts": format_ts(ts), "backfilled": backfilled}}


def _request(item: Crontab, ts: datetime, backfilled: bool) -> cron_store.CronJobRequest:
    return cron_store.CronJobRequest(
        identifier=item.identifier,
        task_identifier=item.task_identifier,
        payload=cron_payload(item, ts, backfilled),
        queue_name=item.queue_name,
        max_attempts=item.max_attempts,
        job_key=item.job_key,
        priority=item.priority,
        job_key_mode=item.job_key_mode.value if item.job_key_mode else None,
    )


def _spec(request: cron_store.CronJobRequest, ts: datetime) -> job.JobSpec:
    return job.JobSpec(
        queue_name=request.queue_name, run_at=ts, max_attempts=request.max_attempts,
        job_key=request.job_key, priority=request.priority,
        job_key_mode=job.JobKeyMode(request.job_key_mode) if request.job_key_mode else None,
    )


def retry_delay(attempt: int) -> float:
    """Capped exponential backoff with jitter (attempt counts from 1)."""
    base = min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * RETRY_MULTIPLIER ** (attempt - 1))
    return base * random.uniform(0.5, 1.0)


async def run_scheduler(
    pool: asyncpg.Pool,
    schema: str,
    crontabs: Sequence[Crontab],
    *,
    stop: asyncio.Event,
    clock: Clock | None = None,
    use_prepared: bool = True,
    hooks: hooks.HookRegistry | None = None,
) -> None:
    """Schedule ``crontabs`` until ``stop`` is set. Database errors restart it (after a
    capped backoff), and the restart backfills what was missed within each item's fill.

    ``hooks``: CronTick and CronJobScheduled are emitted, and BeforeJobSchedule may change
    an item's payload, skip it or refuse it (that minute then gets no job from this
    worker, and is not claimed by it)."""
    del use_prepared  # asyncpg's statement cache decides; kept for the documented signature
    check_unique_ids(crontabs)
    if not crontabs:
        return
    scheduler = _Scheduler(pool, schema, list(crontabs), stop, clock or SystemClock())
    scheduler.hooks = hooks if hooks is not None and hooks.active else None
    attempt = 0
    while not stop.is_set():
        try:
            await scheduler.run()
            return
        except Exception as error:
            if isinstance(error, _BUGS):
                raise
            if stop.is_set():
                return  # shutting down: the pool may be closing under us
            attempt = 1 if scheduler.healthy else attempt + 1
            scheduler.healthy = False
            delay = retry_delay(attempt)
            log.error(
                "cron hit an error; restarting in %.1fs (attempt %d): %s", delay, attempt, error,
                extra={"gw": {"attempt": attempt, "error": str(error)}},
            )
            resume_at = scheduler.clock.now() + timedelta(seconds=delay)
            await scheduler.clock.sleep_until(resume_at, stop)


class _Scheduler:
    def __init__(
        self, pool: asyncpg.Pool, schema: str, items: list[Crontab], stop: asyncio.Event,
        clock: Clock,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.items = items
        self.stop = stop
        self.clock = clock
        self.healthy = False
        self.hooks: hooks.HookRegistry | None = None
        # The first minute not yet scheduled. It survives a restart, so the minutes of a
        # database outage are still scheduled once it is over, fill or not.
        self.resume_at: datetime | None = None

    async def run(self) -> None:
        start = self.clock.now().astimezone(UTC)
        await self.register_and_backfill(start)
        if self.resume_at is None:
            self.resume_at = ceil_minute(start)
        log.info(
            "cron scheduling %d item%s from %s", len(self.items),
            "" if len(self.items) == 1 else "s", format_ts(self.resume_at),
        )
        while not self.stop.is_set():
            await self.clock.sleep_until(self.resume_at, self.stop)
            if self.stop.is_set():
                return
            now = self.clock.now()
            current = floor_minute(now)
            if current < self.resume_at:
                # early timer or a clock that went back: wait again
                if self.hooks is not None:
                    await self.hooks.emit(hooks.CronTimerPremature,
                                          hooks.CronTimerPrematureContext(self.resume_at, now))
                continue
            if current > self.resume_at:
                if self.hooks is not None:
                    await self.hooks.emit(hooks.CronTimerOverdue,
                                          hooks.CronTimerOverdueContext(self.resume_at, now))
                log.warning(
                    "cron is behind (timer late, machine suspended or clock moved forward); "
                    "scheduling every minute from %s", format_ts(self.resume_at),
                )
            await self.catch_up(current)

    async def catch_up(self, current: datetime) -> None:
        """Schedule every minute from ``resume_at`` up to ``current``, one at a time."""
        while self.resume_at is not None and self.resume_at <= current:
            if self.stop.is_set():
                return
            ts = self.resume_at
            batch = [(item, False) for item in self.items if item.matches(ts)]
            if batch:
                await self.schedule(ts, batch)
            else:
                await asyncio.sleep(0)  # a long catch-up must not hold the event loop
            self.resume_at = ts + ONE_MINUTE
            self.healthy = True

    async def register_and_backfill(self, start: datetime) -> None:
        ids = [item.identifier for item in self.items]
        known = {
            row.identifier: row
            for row in await cron_store.fetch_known_crontabs(self.pool, self.schema, ids)
        }
        unknown = [i for i in ids if i not in known]
        if unknown:
            await cron_store.register_crontabs(self.pool, self.schema, unknown, start)
        due = [
            self._backfill_minutes(position, item, start, row.last_execution or row.known_since)
            for position, item in enumerate(self.items)
            if (row := known.get(item.identifier)) is not None and item.fill.duration
        ]
        batch: list[tuple[Crontab, bool]] = []
        batch_ts: datetime | None = None
        # Minute by minute, oldest first, one statement per minute: claiming a minute moves
        # last_execution, so a later minute claimed first would block the earlier one.
        for ts, position in heapq.merge(*due):
            if ts != batch_ts:
                if batch_ts is not None:
                    await self.schedule(batch_ts, batch)
                if self.stop.is_set():
                    return
                batch, batch_ts = [], ts
            batch.append((self.items[position], True))
        if batch_ts is not None:
            await self.schedule(batch_ts, batch)

    def _backfill_minutes(
        self, position: int, item: Crontab, start: datetime, not_before: datetime
    ) -> Iterator[tuple[datetime, int]]:
        """The minutes of ``item``'s fill period before ``start`` that are due."""
        first = max(ceil_minute(start - item.fill.duration), ceil_minute(not_before))
        for ts in due_minutes(item.timer, first, start, item.tz, item.matches):
            yield ts, position

    async def schedule(self, ts: datetime, batch: list[tuple[Crontab, bool]]) -> None:
        if not batch:
            return
        requests = [_request(item, ts, backfilled) for item, backfilled in batch]
        if self.hooks is not None:
            batch, requests = await self._intercept(self.hooks, ts, batch, requests)
        claimed = await self._claim(ts, requests)
        for item, backfilled in batch:
            if item.identifier in claimed:
                if self.hooks is not None:
                    await self.hooks.emit(hooks.CronJobScheduled, hooks.CronJobScheduledContext(
                        item, ts, claimed[item.identifier], backfilled
                    ))
                log.debug(
                    "cron scheduled %s for %s%s", item.identifier, format_ts(ts),
                    " (backfill)" if backfilled else "",
                    extra={"gw": {"cron_id": item.identifier, "task": item.task_identifier,
                                  "job_id": claimed[item.identifier], "ts": format_ts(ts),
                                  "backfilled": backfilled}},
                )

    async def _claim(
        self, ts: datetime, requests: list[cron_store.CronJobRequest]
    ) -> dict[str, int]:
        """Claim ``ts`` for every request in one statement; if the database refuses it,
        claim them one by one so that a refused job costs only its own item the minute."""
        if not requests:
            return {}
        try:
            return await cron_store.schedule_cron_jobs(self.pool, self.schema, requests, ts)
        except asyncpg.PostgresError as error:
            if not _is_refusal(error):
                raise
            if len(requests) == 1:
                self._refused(ts, requests[0], error)
                return {}
        claimed: dict[str, int] = {}
        for request in requests:
            try:
                claimed.update(
                    await cron_store.schedule_cron_jobs(self.pool, self.schema, [request], ts)
                )
            except asyncpg.PostgresError as error:
                if not _is_refusal(error):
                    raise
                self._refused(ts, request, error)
        return claimed

    def _refused(
        self, ts: datetime, request: cron_store.CronJobRequest, error: asyncpg.PostgresError
    ) -> None:
        log.error(
            "cron item %s at %s not scheduled: the database refused its job for task %r: %s",
            request.identifier, format_ts(ts), request.task_identifier, error,
            extra={"gw": {"cron_id": request.identifier, "task": request.task_identifier,
                          "ts": format_ts(ts), "error": str(error),
                          "sqlstate": getattr(error, "sqlstate", None)}},
        )

    async def _intercept(
        self,
        registry: hooks.HookRegistry,
        ts: datetime,
        batch: list[tuple[Crontab, bool]],
        requests: list[cron_store.CronJobRequest],
    ) -> tuple[list[tuple[Crontab, bool]], list[cron_store.CronJobRequest]]:
        """CronTick, then BeforeJobSchedule for each item: the items that remain."""
        await registry.emit(
            hooks.CronTick, hooks.CronTickContext(ts, tuple(item for item, _ in batch))
        )
        if hooks.BeforeJobSchedule not in registry.events:
            return batch, requests
        kept: list[tuple[tuple[Crontab, bool], cron_store.CronJobRequest]] = []
        for entry, request in zip(batch, requests, strict=True):
            context = hooks.BeforeJobScheduleContext(
                request.task_identifier, request.payload, _spec(request, ts)
            )
            try:
                payload = await registry.before_job_schedule(context)
            except JobScheduleSkippedError:
                log.info("cron item %s at %s skipped by a hook", request.identifier,
                         format_ts(ts))
                continue
            except JobScheduleFailedError as error:
                log.error("cron item %s at %s not scheduled: %s", request.identifier,
                          format_ts(ts), error)
                continue
            kept.append((entry, replace(request, payload=payload)))
        return [entry for entry, _ in kept], [request for _, request in kept]
