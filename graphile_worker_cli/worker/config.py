"""``WorkerConfig``: everything a worker is configured with, built with keywords or
fluent calls. ``WorkerOptions`` (in ``options``) adds ``init()``, which builds the worker;
this module imports no part of the worker, so the worker can read its configuration
without an import cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

import asyncpg

from graphile_worker_cli import context, db
from graphile_worker_cli import hooks as gw_hooks
from graphile_worker_cli import tasks as gw_tasks
from graphile_worker_cli.errors import BadInputError, ConfigError
from graphile_worker_cli.recovery import config as recovery_config
from graphile_worker_cli.worker.shutdown import ShutdownSignal

if TYPE_CHECKING:
    from graphile_worker_cli import config, cron

C = TypeVar("C")
R = TypeVar("R")


class RunningWorker(Protocol):
    """What a side task is given: the worker it runs beside."""

    options: WorkerConfig
    pool: asyncpg.Pool
    schema: str
    worker_id: str
    stopping: asyncio.Event
    settled: asyncio.Event

    @property
    def jobs_run(self) -> int: ...

    def request_shutdown(self, reason: str = ...) -> None: ...


_RECOVERY_FIELDS = (
    "heartbeat_interval", "sweep_interval", "sweep_threshold", "recovery_delay",
    "resilient_sweep_threshold_multiplier", "resilient_job_flags",
)
"""The fields of WorkerConfig a ``WorkerRecoveryConfig`` sets (same names there)."""

SideTask = Callable[[RunningWorker], Coroutine[Any, Any, None]]
"""A coroutine the worker runs alongside its loop (cron, recovery, metrics...). It should
return when ``worker.stopping`` is set; if it raises, the worker shuts down and re-raises."""


@dataclass(kw_only=True)
class WorkerConfig:
    database_url: str | None = None
    direct_database_url: str | None = None
    """A direct PostgreSQL session for the liveness lock (behind a transaction pooler)."""
    pg_pool: asyncpg.Pool | None = None
    schema: str = db.DEFAULT_SCHEMA
    concurrency: int = 10
    poll_interval: float = 2.0
    max_pg_conn: int = 10
    forbidden_flags: list[str] = field(default_factory=list)
    shutdown_grace_period: float = 30.0
    shutdown_abort_timeout: float = 5.0
    """After the grace period: how long aborted jobs may take to return before they are
    cancelled (the reference's ``gracefulShutdownAbortTimeout``)."""
    shutdown_interrupted_job_retry_delay: float = 1.0
    task_timeout: float | None = None
    """Seconds a job may run unless its task sets ``timeout`` (None: no limit)."""
    task_max_concurrency: dict[str, int] = field(default_factory=dict)
    """Task identifier -> the most jobs of it this worker runs at once; wins over the
    task's own ``max_concurrency``."""
    history_retention: float | None = None
    """Seconds to keep job history (a record of each job completed or failed for good, in
    ``_gw_job_history``); None or 0: no history is written (the default)."""
    listen_os_shutdown_signals: bool = True
    shutdown_signal: ShutdownSignal | None = None
    migrate: bool = True
    tasks: gw_tasks.TaskRegistry = field(default_factory=lambda: gw_tasks.TaskRegistry())
    extensions: context.Extensions = field(default_factory=lambda: context.Extensions())
    crontabs: list[cron.Crontab] = field(default_factory=list)
    worker_id: str | None = None
    # Throughput (issue 4) and recovery (issue 6) settings; the loop reads what it supports.
    local_queue_size: int = 0
    local_queue_ttl: float = 60.0
    local_queue_refetch_delay: float = 0.0
    local_queue_refetch_delay_threshold: int = 0
    """Only a fetch returning at most this many jobs starts the refetch delay."""
    local_queue_refetch_delay_max_abort_threshold: int | None = None
    """Up to this many announced jobs cut the refetch delay short (None: 5 x queue size)."""
    complete_job_batch_delay: float = 0.0
    fail_job_batch_delay: float = 0.0
    prepared_statements: bool = True
    worker_recovery: bool | recovery_config.WorkerRecoveryConfig = True
    """On or off; or a ``WorkerRecoveryConfig``, whose values then set the recovery fields
    below (and this one to its ``enabled``)."""
    heartbeat_interval: float = 10.0
    sweep_interval: float = 30.0
    sweep_threshold: float = 60.0
    recovery_delay: float = 0.0
    resilient_sweep_threshold_multiplier: int = recovery_config.DEFAULT_RESILIENT_MULTIPLIER
    resilient_job_flags: tuple[str, ...] = (recovery_config.INFRASTRUCTURE_RESILIENT_FLAG,)
    jobs_vacuum_threshold: int = 100_000
    """Vacuum the jobs table (one worker of the fleet at a time) once this many dead rows
    (about two per finished job) built up since the last vacuum; 0: never (see
    ``worker.maintenance``)."""
    side_tasks: list[SideTask] = field(default_factory=list)
    hooks: gw_hooks.HookRegistry = field(default_factory=lambda: gw_hooks.HookRegistry())
    """Lifecycle hooks and plugins (``on``, ``add_plugin``); see docs/hooks.md."""

    def __post_init__(self) -> None:
        self._apply_recovery_config()

    def task_limits(self) -> dict[str, int]:
        """Task identifier -> the most jobs of it this worker runs at once: the task's own
        ``max_concurrency``, unless ``task_max_concurrency`` names the task."""
        limits = {
            definition.identifier: definition.max_concurrency for definition in self.tasks
            if definition.max_concurrency is not None
        }
        limits.update(self.task_max_concurrency)
        return limits

    def _check_task_max_concurrency(self) -> None:
        for name, limit in self.task_max_concurrency.items():
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ConfigError(
                    f'task_max_concurrency: task "{name}": expected an integer >= 1, '
                    f"got {limit!r}"
                )
            if name not in self.tasks:
                raise ConfigError(
                    f'task_max_concurrency names task "{name}", which this worker does not '
                    f"have (its tasks: {', '.join(self.tasks.identifiers())})"
                )

    def _apply_recovery_config(self) -> None:
        """A config given as ``worker_recovery`` (at construction, or assigned later and
        caught by ``validate``) becomes the recovery fields."""
        if isinstance(self.worker_recovery, recovery_config.WorkerRecoveryConfig):
            self._spread_recovery_config(self.worker_recovery)

    def _spread_recovery_config(self, config: recovery_config.WorkerRecoveryConfig) -> None:
        """Copy the config onto the recovery fields; a field also given with another value
        is ambiguous, so refused."""
        defaults = {f.name: f.default for f in fields(self)}
        for name in _RECOVERY_FIELDS:
            given, wanted = getattr(self, name), getattr(config, name)
            if given != defaults[name] and given != wanted:
                raise ConfigError(
                    f"{type(self).__name__} got {name}={given!r} and worker_recovery="
                    f"WorkerRecoveryConfig({name}={wanted!r}): give {name} once"
                )
            setattr(self, name, wanted)
        self.worker_recovery = config.enabled

    # -- fluent configuration -------------------------------------------------------------
    def define_job(self, obj: Any, identifier: str | None = None) -> Self:
        """Register a TaskHandler/BatchTaskHandler subclass or a task function."""
        self.tasks.add(gw_tasks.define_task(obj, identifier))
        return self

    def define_batch_job(self, obj: Any, identifier: str | None = None) -> Self:
        """The seed's name for registering a ``BatchTaskHandler`` (same as define_job)."""
        return self.define_job(obj, identifier)

    def define_jobs(self, *objs: Any) -> Self:
        for obj in objs:
            self.define_job(obj)
        return self

    def add_extension(self, value: Any) -> Self:
        """Make ``value`` available to every task as ``ctx.extensions[type(value)]``."""
        self.extensions.insert(value)
        return self

    def add_forbidden_flag(self, flag: str) -> Self:
        """Skip jobs carrying this flag."""
        if flag not in self.forbidden_flags:
            self.forbidden_flags.append(flag)
        return self

    def with_cron(self, item: Any) -> Self:
        """Add crontab lines (text) or a ``cron.Cron`` item to schedule."""
        from graphile_worker_cli import cron  # only when there is a crontab: start-up cost

        self.crontabs.extend(cron.parse_cron_input(item))
        return self

    def on(
        self, event: type[gw_hooks.Event[C, R]], handler: gw_hooks.Handler[C, R]
    ) -> Self:
        """Call ``handler(context)`` at ``event`` (e.g. ``hooks.JobStart``)."""
        self.hooks.on(event, handler)
        return self

    def add_plugin(self, plugin: gw_hooks.Plugin) -> Self:
        """Let ``plugin.register(registry)`` register its hooks."""
        self.hooks.add_plugin(plugin)
        return self

    def add_side_task(self, side_task: SideTask) -> Self:
        self.side_tasks.append(side_task)
        return self

    @classmethod
    def from_settings(
        cls, settings: config.Settings, registry: gw_tasks.TaskRegistry, **extra: Any
    ) -> Self:
        """Options from loaded settings and a task registry (``extra`` overrides fields)."""
        names = (
            "concurrency", "poll_interval", "max_pg_conn", "shutdown_grace_period",
            "shutdown_abort_timeout",
            "shutdown_interrupted_job_retry_delay", "migrate", "local_queue_size",
            "local_queue_ttl", "local_queue_refetch_delay", "complete_job_batch_delay",
            "local_queue_refetch_delay_threshold",
            "local_queue_refetch_delay_max_abort_threshold", "fail_job_batch_delay",
            "prepared_statements", "worker_recovery",
            "heartbeat_interval", "sweep_interval", "sweep_threshold", "recovery_delay",
            "direct_database_url", "task_timeout", "jobs_vacuum_threshold", "history_retention",
        )
        values: dict[str, Any] = {
            name: getattr(settings, name) for name in names if hasattr(settings, name)
        }
        values.update(
            database_url=settings.database_url,
            schema=settings.schema_name,
            forbidden_flags=list(settings.forbidden_flags),
            task_max_concurrency=dict(settings.task_max_concurrency),
            tasks=registry,
        )
        values.update(extra)
        return cls(**values)

    def connection_budget(self, pool_size: int) -> dict[str, int]:
        """The most connections a worker with these options opens: ``pool`` (``pool_size``,
        on the database URL, or the pooler) and ``sessions`` of its own (LISTEN, the fetch
        session, the liveness session; on the direct URL when set). Mirrors the choices of
        ``Worker`` (listen, fetch) and ``recovery`` (liveness thread)."""
        session_url = self.direct_database_url or self.database_url
        listen = 1 if session_url else 0
        fetch = 1 if self.direct_database_url or (
            self.database_url and self.prepared_statements) else 0
        liveness = 1 if self.worker_recovery and session_url else 0
        return {"pool": pool_size, "sessions": listen + fetch + liveness}

    # -- initialisation -------------------------------------------------------------------
    def validate(self) -> None:
        self._apply_recovery_config()
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1 (got {self.concurrency})")
        if self.poll_interval <= 0:
            raise ConfigError(f"poll_interval must be positive (got {self.poll_interval})")
        if self.max_pg_conn < 1:
            raise ConfigError(f"max_pg_conn must be at least 1 (got {self.max_pg_conn})")
        if min(self.shutdown_grace_period, self.shutdown_abort_timeout,
               self.shutdown_interrupted_job_retry_delay) < 0:
            raise ConfigError("shutdown durations must not be negative")
        if self.history_retention is not None and self.history_retention < 0:
            raise ConfigError(
                f"history_retention must not be negative (got {self.history_retention})"
            )
        if self.task_timeout is not None and self.task_timeout <= 0:
            raise ConfigError(f"task_timeout must be more than 0 (got {self.task_timeout})")
        if self.local_queue_size < 0:
            raise ConfigError(
                f"local_queue_size must be 0 (off) or more (got {self.local_queue_size})"
            )
        if self.local_queue_refetch_delay_threshold < 0 or (
            self.local_queue_refetch_delay_max_abort_threshold or 0
        ) < 0:
            raise ConfigError("local queue refetch delay thresholds must not be negative")
        if self.jobs_vacuum_threshold < 0:
            raise ConfigError(
                f"jobs_vacuum_threshold must be 0 (off) or more (got {self.jobs_vacuum_threshold})"
            )
        if self.local_queue_ttl <= 0:
            raise ConfigError(f"local_queue_ttl must be positive (got {self.local_queue_ttl})")
        for name in ("local_queue_refetch_delay", "complete_job_batch_delay",
                     "fail_job_batch_delay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative (got {getattr(self, name)})")
        if self.local_queue_refetch_delay > self.poll_interval:
            raise ConfigError(
                f"local_queue_refetch_delay ({self.local_queue_refetch_delay:g}s) must not "
                f"exceed poll_interval ({self.poll_interval:g}s)"
            )
        if len(self.tasks) == 0:
            raise BadInputError(
                "no tasks defined: register at least one with define_job(...) "
                "(or pass --tasks DIR / --tasks-module MODULE to gw run)"
            )
        self._check_task_max_concurrency()
        if self.worker_recovery:
            from graphile_worker_cli import recovery

            recovery.WorkerRecoveryConfig.from_settings(self)  # ConfigError when inconsistent
        if self.pg_pool is None and not self.database_url:
            raise ConfigError(
                "no database: set database_url (or DATABASE_URL), pass pg_pool, or set "
                "PG* environment variables (PGHOST, PGDATABASE...)"
            )
