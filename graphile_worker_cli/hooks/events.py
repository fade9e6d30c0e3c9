"""The hook points: one ``Event`` class per point, one frozen dataclass for its context.

Observer events (``JobStart``, ``WorkerShutdown``...) tell handlers what happened; their
return value is ignored. Interceptor events (``BeforeJobRun``, ``AfterJobRun``,
``BeforeJobSchedule``, ``JobRecovery``) may change what happens next: see ``results``.

Times are ``time.monotonic`` differences in seconds (``duration``); datetimes are aware.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from graphile_worker_cli import job as jobs
from graphile_worker_cli.extensions import Extensions
from graphile_worker_cli.hooks import results
from graphile_worker_cli.task_outcome import TaskFailure, TaskOutcome

if TYPE_CHECKING:
    import asyncpg

    from graphile_worker_cli.cron.types import Crontab

__all__ = [
    "ALL_EVENTS",
    "AfterJobRun",
    "AfterJobRunContext",
    "BeforeJobRun",
    "BeforeJobRunContext",
    "BeforeJobSchedule",
    "BeforeJobScheduleContext",
    "CronJobScheduled",
    "CronJobScheduledContext",
    "CronTick",
    "CronTickContext",
    "CronTimerOverdue",
    "CronTimerOverdueContext",
    "CronTimerPremature",
    "CronTimerPrematureContext",
    "Event",
    "FetchEmpty",
    "FetchEmptyContext",
    "FetchError",
    "FetchErrorContext",
    "Interceptor",
    "JobComplete",
    "JobCompleteContext",
    "JobFail",
    "JobFailContext",
    "JobFetch",
    "JobFetchContext",
    "JobInterrupted",
    "JobInterruptedContext",
    "JobPermanentlyFail",
    "JobPermanentlyFailContext",
    "JobRecovery",
    "JobRecoveryContext",
    "JobScheduled",
    "JobScheduledContext",
    "JobStart",
    "JobStartContext",
    "ListenConnectionLost",
    "ListenConnectionLostContext",
    "ListenConnectionRestored",
    "ListenConnectionRestoredContext",
    "LocalQueueGetJobsComplete",
    "LocalQueueGetJobsCompleteContext",
    "LocalQueueInit",
    "LocalQueueInitContext",
    "LocalQueueModeChange",
    "LocalQueueModeChangeContext",
    "LocalQueueRefetchDelayAbort",
    "LocalQueueRefetchDelayAbortContext",
    "LocalQueueRefetchDelayExpired",
    "LocalQueueRefetchDelayExpiredContext",
    "LocalQueueRefetchDelayStart",
    "LocalQueueRefetchDelayStartContext",
    "LocalQueueReturnJobs",
    "LocalQueueReturnJobsContext",
    "Observer",
    "RecoveryReason",
    "StaleLocksReset",
    "StaleLocksResetContext",
    "WorkerFatalError",
    "WorkerFatalErrorContext",
    "WorkerInit",
    "WorkerInitContext",
    "WorkerRecovered",
    "WorkerRecoveredContext",
    "WorkerShutdown",
    "WorkerShutdownContext",
    "WorkerStart",
    "WorkerStartContext",
]

C = TypeVar("C")
R = TypeVar("R")


class Event(Generic[C, R]):
    """A hook point. Subclasses are markers passed to ``HookRegistry.on(Event, handler)``;
    ``C`` is the context a handler receives, ``R`` what it may return."""

    interceptor: ClassVar[bool] = False


class Observer(Event[C, None]):
    """An event whose handlers only observe (their return value is ignored)."""


class Interceptor(Event[C, R]):
    """An event whose handlers may change the outcome."""

    interceptor: ClassVar[bool] = True


# --- worker --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerInitContext:
    """The pool is open, the schema migrated and the task ids registered; nothing runs."""

    worker_id: str
    schema: str
    concurrency: int
    pool: asyncpg.Pool


@dataclass(frozen=True, slots=True)
class WorkerStartContext:
    worker_id: str
    schema: str
    pool: asyncpg.Pool
    extensions: Extensions
    local_queue_length: Callable[[], int] = lambda: 0
    """How many jobs wait in the worker's local queue right now."""


@dataclass(frozen=True, slots=True)
class WorkerShutdownContext:
    """The worker stopped: every job finished or was handed back."""

    worker_id: str
    reason: str
    jobs_run: int


@dataclass(frozen=True, slots=True)
class WorkerRecoveredContext:
    """A sweep by this worker gave the jobs of dead workers back to the queue."""

    worker_id: str
    dead_worker_ids: tuple[str, ...]
    job_ids: tuple[int, ...]

    @property
    def jobs_recovered(self) -> int:
        return len(self.job_ids)


# --- jobs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobFetchContext:
    job: jobs.Job
    worker_id: str


@dataclass(frozen=True, slots=True)
class JobStartContext:
    job: jobs.Job
    worker_id: str


@dataclass(frozen=True, slots=True)
class JobCompleteContext:
    job: jobs.Job
    worker_id: str
    duration: float
    skipped: bool = False
    """True when a BeforeJobRun hook completed the job without running it."""


@dataclass(frozen=True, slots=True)
class JobFailContext:
    """Every failed attempt (``will_retry`` False on the last one, which is then followed
    by ``JobPermanentlyFail``)."""

    job: jobs.Job
    worker_id: str
    error: str
    will_retry: bool
    duration: float
    replacement_payload: Any = None
    """For a batch job that partly failed: the failed items the retry will run."""
    ran: bool = True
    """False when a BeforeJobRun hook failed the job before its handler ran."""


@dataclass(frozen=True, slots=True)
class JobPermanentlyFailContext:
    job: jobs.Job
    worker_id: str
    error: str
    duration: float


@dataclass(frozen=True, slots=True)
class JobInterruptedContext:
    """The job was cancelled by a shutdown and handed back without using an attempt."""

    job: jobs.Job
    worker_id: str
    reason: str
    duration: float


@dataclass(frozen=True, slots=True)
class BeforeJobRunContext:
    job: jobs.Job
    worker_id: str

    @property
    def payload(self) -> Any:
        return self.job.payload


@dataclass(frozen=True, slots=True)
class AfterJobRunContext:
    job: jobs.Job
    worker_id: str
    outcome: TaskOutcome
    duration: float

    @property
    def succeeded(self) -> bool:
        return not isinstance(self.outcome, TaskFailure)

    @property
    def error(self) -> str | None:
        return getattr(self.outcome, "message", None)


class RecoveryReason(enum.StrEnum):
    WORKER_CRASHED = "worker_crashed"
    """The worker holding the job stopped heart-beating and was swept."""


@dataclass(frozen=True, slots=True)
class JobRecoveryContext:
    job: jobs.Job
    """The job as it was locked by the dead worker (attempts include the lost one)."""
    worker_id: str
    """The sweeping worker."""
    previous_worker_id: str
    reason: RecoveryReason = RecoveryReason.WORKER_CRASHED


@dataclass(frozen=True, slots=True)
class BeforeJobScheduleContext:
    identifier: str
    payload: Any
    """The payload as JSON values (what will be stored)."""
    spec: jobs.JobSpec


@dataclass(frozen=True, slots=True)
class JobScheduledContext:
    """A job was added (after the statement, on the same connection/transaction)."""

    job: jobs.Job
    conn: Any
    """The connection the job was added on: gw's pool connection or the caller's ``conn=``
    (asyncpg, psycopg, SQLAlchemy...). To run SQL whatever the driver, use ``fetch``."""
    schema: str
    started_ns: int
    """``time.time_ns()`` when the add call began (for spans)."""
    fetch: Callable[..., Awaitable[list[Any]]]
    """``await fetch(sql, *args)``: rows of a statement with asyncpg-style ``$n``
    placeholders, run on ``conn`` in the same transaction, whatever its driver."""


# --- cron ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CronTickContext:
    timestamp: datetime
    crontabs: tuple[Crontab, ...]
    """The items due at this minute."""


@dataclass(frozen=True, slots=True)
class CronJobScheduledContext:
    crontab: Crontab
    scheduled_at: datetime
    job_id: int
    backfilled: bool


# --- local queue ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalQueueInitContext:
    worker_id: str
    size: int


@dataclass(frozen=True, slots=True)
class LocalQueueModeChangeContext:
    worker_id: str
    old_mode: str
    new_mode: str


@dataclass(frozen=True, slots=True)
class LocalQueueGetJobsCompleteContext:
    worker_id: str
    jobs_count: int


@dataclass(frozen=True, slots=True)
class LocalQueueReturnJobsContext:
    worker_id: str
    jobs_count: int


@dataclass(frozen=True, slots=True)
class LocalQueueRefetchDelayStartContext:
    worker_id: str
    duration: float
    threshold: int = 0


@dataclass(frozen=True, slots=True)
class LocalQueueRefetchDelayAbortContext:
    worker_id: str
    count: int = 0


@dataclass(frozen=True, slots=True)
class LocalQueueRefetchDelayExpiredContext:
    worker_id: str


# --- the worker's connections, fetches, stale locks, cron timers, fatal errors --------------


@dataclass(frozen=True, slots=True)
class ListenConnectionLostContext:
    worker_id: str
    error: str
    """Why: the connection closed, or the error that ended (or prevented) it."""


@dataclass(frozen=True, slots=True)
class ListenConnectionRestoredContext:
    worker_id: str


@dataclass(frozen=True, slots=True)
class FetchErrorContext:
    worker_id: str
    error: str
    attempt: int
    """Consecutive failures so far (the fetch is retried with backoff)."""


@dataclass(frozen=True, slots=True)
class FetchEmptyContext:
    worker_id: str


@dataclass(frozen=True, slots=True)
class StaleLocksResetContext:
    worker_id: str
    schema: str
    error: str | None
    """None: the reset ran; else why it failed (it is tried again later)."""


@dataclass(frozen=True, slots=True)
class CronTimerPrematureContext:
    expected_at: datetime
    """The minute the timer was set for."""
    now: datetime


@dataclass(frozen=True, slots=True)
class CronTimerOverdueContext:
    expected_at: datetime
    """The first minute not scheduled yet; every minute from it is scheduled now."""
    now: datetime


@dataclass(frozen=True, slots=True)
class WorkerFatalErrorContext:
    worker_id: str
    source: str
    """What failed: ``fetch loop`` or a side task's name (``listener``, ``cron``...)."""
    error: BaseException


# --- the events ----------------------------------------------------------------------------


class WorkerInit(Observer[WorkerInitContext]):
    """Fired by ``WorkerOptions.init()`` once the worker is ready to run."""


class WorkerStart(Observer[WorkerStartContext]):
    """Fired when ``run()``/``run_once()`` starts, before the first fetch."""


class WorkerShutdown(Observer[WorkerShutdownContext]):
    """Fired when the worker has stopped (every outcome written)."""


class WorkerRecovered(Observer[WorkerRecoveredContext]):
    """Fired after a sweep recovered the jobs of dead workers."""


class JobFetch(Observer[JobFetchContext]):
    """Fired for each job a fetch locked, before anything else happens to it."""


class JobStart(Observer[JobStartContext]):
    """Fired just before the handler runs (after BeforeJobRun let it)."""


class JobComplete(Observer[JobCompleteContext]):
    """Fired once the job's completion is written."""


class JobFail(Observer[JobFailContext]):
    """Fired once a failed attempt is written (retry or not)."""


class JobPermanentlyFail(Observer[JobPermanentlyFailContext]):
    """Fired after JobFail when the job is out of attempts."""


class JobInterrupted(Observer[JobInterruptedContext]):
    """Fired once a job cancelled by shutdown is handed back."""


class JobScheduled(Observer[JobScheduledContext]):
    """Fired by WorkerUtils after each job it added (tracing uses it)."""


class CronTick(Observer[CronTickContext]):
    """Fired for each minute the cron scheduler schedules (items due then)."""


class CronJobScheduled(Observer[CronJobScheduledContext]):
    """Fired for each cron job this worker added (the minute was claimed by it)."""


class LocalQueueInit(Observer[LocalQueueInitContext]):
    pass


class LocalQueueModeChange(Observer[LocalQueueModeChangeContext]):
    pass


class LocalQueueGetJobsComplete(Observer[LocalQueueGetJobsCompleteContext]):
    pass


class LocalQueueReturnJobs(Observer[LocalQueueReturnJobsContext]):
    pass


class LocalQueueRefetchDelayStart(Observer[LocalQueueRefetchDelayStartContext]):
    pass


class LocalQueueRefetchDelayAbort(Observer[LocalQueueRefetchDelayAbortContext]):
    pass


class LocalQueueRefetchDelayExpired(Observer[LocalQueueRefetchDelayExpiredContext]):
    pass


class ListenConnectionLost(Observer[ListenConnectionLostContext]):
    """The LISTEN connection closed or failed (the reference's ``pool:listen:error``)."""


class ListenConnectionRestored(Observer[ListenConnectionRestoredContext]):
    """Listening again after a loss (the reference's ``pool:listen:success`` after one)."""


class FetchError(Observer[FetchErrorContext]):
    """A fetch failed (the reference's ``worker:getJob:error``)."""


class FetchEmpty(Observer[FetchEmptyContext]):
    """A fetch found no job (the reference's ``worker:getJob:empty``)."""


class StaleLocksReset(Observer[StaleLocksResetContext]):
    """The stale-lock reset ran or failed (the reference's ``resetLocked:success`` /
    ``resetLocked:failure``)."""


class CronTimerPremature(Observer[CronTimerPrematureContext]):
    """The cron timer fired before its minute (``cron:prematureTimer``); it waits again."""


class CronTimerOverdue(Observer[CronTimerOverdueContext]):
    """The cron timer fired after the next minute had begun (``cron:overdueTimer``)."""


class WorkerFatalError(Observer[WorkerFatalErrorContext]):
    """The fetch loop or a side task failed: the worker stops (``worker:fatalError``)."""


class BeforeJobRun(Interceptor[BeforeJobRunContext, results.HookResult | None]):
    """Before the handler: CONTINUE, SKIP (complete without running) or fail(message)."""


class AfterJobRun(Interceptor[AfterJobRunContext, results.HookResult | None]):
    """After the handler: CONTINUE (keep its outcome), SKIP (count it as a success) or
    fail(message) (count it as a failure)."""


class BeforeJobSchedule(
    Interceptor[BeforeJobScheduleContext, results.JobScheduleResult | None]
):
    """Before a job is added, on every add path: continue_with(payload), SKIP or
    fail(message)."""


class JobRecovery(Interceptor[JobRecoveryContext, results.JobRecoveryResult | None]):
    """For each job a sweep recovers: DEFAULT, reschedule(...), FAIL_WITH_BACKOFF or SKIP."""


ALL_EVENTS: Sequence[type[Event[Any, Any]]] = (
    WorkerInit, WorkerStart, WorkerShutdown, WorkerRecovered,
    JobFetch, JobStart, JobComplete, JobFail, JobPermanentlyFail, JobInterrupted,
    JobScheduled, CronTick, CronJobScheduled,
    LocalQueueInit, LocalQueueModeChange, LocalQueueGetJobsComplete, LocalQueueReturnJobs,
    LocalQueueRefetchDelayStart, LocalQueueRefetchDelayAbort, LocalQueueRefetchDelayExpired,
    ListenConnectionLost, ListenConnectionRestored, FetchError, FetchEmpty, StaleLocksReset,
    CronTimerPremature, CronTimerOverdue, WorkerFatalError,
    BeforeJobRun, AfterJobRun, BeforeJobSchedule, JobRecovery,
)

