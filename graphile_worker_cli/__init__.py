"""gw — Graphile Worker for Python.

The public API, importable from the package root. Names resolve lazily so that
``import graphile_worker_cli`` (and so ``gw --help``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # jobs
    "Job": "job",
    "JobSpec": "job",
    "JobKeyMode": "job",
    "RawJobSpec": "job",
    "WorkerUtils": "worker_utils",
    "CleanupTask": "job_input",
    "RescheduleJobOptions": "job_input",
    "SyncWorkerUtils": "sync",
    # tasks and context
    "TaskHandler": "tasks",
    "BatchTaskHandler": "tasks",
    "TaskDefinition": "tasks",
    "TaskRegistry": "tasks",
    "TaskSuccess": "tasks",
    "TaskFailure": "tasks",
    "TaskOutcome": "tasks",
    "task": "tasks",
    "define_task": "tasks",
    "run_task_from_worker_ctx": "tasks",
    "WorkerContext": "context",
    "Extensions": "context",
    "ReadOnlyExtensions": "context",
    "AbortSignal": "context",
    # worker
    "WorkerOptions": "worker",
    "Worker": "worker",
    "ShutdownSignal": "worker",
    "Runner": "runner",
    "run": "runner",
    # cron
    "Cron": "cron",
    "CronBuilder": "cron",
    "Crontab": "cron",
    "CrontabFill": "cron",
    "CronJobKeyMode": "cron",
    "parse_crontab": "cron",
    # recovery
    "WorkerRecoveryConfig": "recovery",
    "SweepStaleWorkersOptions": "recovery",
    "SweepStaleWorkersResult": "recovery",
    "ActiveWorkerRow": "recovery",
    "INFRASTRUCTURE_RESILIENT_FLAG": "recovery",
    "job_has_resilient_flag": "recovery",
    # database (the migrate() function lives in graphile_worker_cli.migrate: a submodule
    # and a root attribute of one name would shadow each other)
    "escape_identifier": "db",
    # lifecycle hooks
    "HookRegistry": "hooks",
    "Plugin": "hooks",
    "HookResult": "hooks",
    "JobScheduleResult": "hooks",
    "JobStart": "hooks",
    "BeforeJobRun": "hooks",
    # errors
    "GraphileWorkerError": "errors",
}

__all__ = [
    "INFRASTRUCTURE_RESILIENT_FLAG",
    "AbortSignal",
    "ActiveWorkerRow",
    "BatchTaskHandler",
    "BeforeJobRun",
    "CleanupTask",
    "Cron",
    "CronBuilder",
    "CronJobKeyMode",
    "Crontab",
    "CrontabFill",
    "Extensions",
    "GraphileWorkerError",
    "HookRegistry",
    "HookResult",
    "Job",
    "JobKeyMode",
    "JobScheduleResult",
    "JobSpec",
    "JobStart",
    "Plugin",
    "RawJobSpec",
    "ReadOnlyExtensions",
    "RescheduleJobOptions",
    "Runner",
    "ShutdownSignal",
    "SweepStaleWorkersOptions",
    "SweepStaleWorkersResult",
    "SyncWorkerUtils",
    "TaskDefinition",
    "TaskFailure",
    "TaskHandler",
    "TaskOutcome",
    "TaskRegistry",
    "TaskSuccess",
    "Worker",
    "WorkerContext",
    "WorkerOptions",
    "WorkerRecoveryConfig",
    "WorkerUtils",
    "define_task",
    "escape_identifier",
    "job_has_resilient_flag",
    "parse_crontab",
    "run",
    "run_task_from_worker_ctx",
    "task",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'graphile_worker_cli' has no attribute {name!r}")
    module = importlib.import_module(f"graphile_worker_cli.{module_name}")
    value = getattr(module, name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from graphile_worker_cli.context import (
        AbortSignal,
        Extensions,
        ReadOnlyExtensions,
        WorkerContext,
    )
    from graphile_worker_cli.cron import (
        Cron,
        CronBuilder,
        CronJobKeyMode,
        Crontab,
        CrontabFill,
        parse_crontab,
    )
    from graphile_worker_cli.db import escape_identifier
    from graphile_worker_cli.errors import GraphileWorkerError
    from graphile_worker_cli.hooks import (
        BeforeJobRun,
        HookRegistry,
        HookResult,
        JobScheduleResult,
        JobStart,
        Plugin,
    )
    from graphile_worker_cli.job import Job, JobKeyMode, JobSpec, RawJobSpec
    from graphile_worker_cli.job_input import CleanupTask, RescheduleJobOptions
    from graphile_worker_cli.recovery import (
        INFRASTRUCTURE_RESILIENT_FLAG,
        ActiveWorkerRow,
        SweepStaleWorkersOptions,
        SweepStaleWorkersResult,
        WorkerRecoveryConfig,
        job_has_resilient_flag,
    )
    from graphile_worker_cli.runner import Runner, run
    from graphile_worker_cli.sync import SyncWorkerUtils
    from graphile_worker_cli.tasks import (
        BatchTaskHandler,
        TaskDefinition,
        TaskFailure,
        TaskHandler,
        TaskOutcome,
        TaskRegistry,
        TaskSuccess,
        define_task,
        run_task_from_worker_ctx,
        task,
    )
    from graphile_worker_cli.worker import ShutdownSignal, Worker, WorkerOptions
    from graphile_worker_cli.worker_utils import WorkerUtils
