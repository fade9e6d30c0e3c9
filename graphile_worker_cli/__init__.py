"""gw — Graphile Worker for Python.

The public API, importable from the package root. Names resolve lazily so that
``import graphile_worker_cli`` (and so ``gw --help``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    # jobs
    "job": ("Job", "JobHistoryEntry", "JobKeyMode", "JobSpec", "RawJobSpec"),
    "job_input": ("CancelOutcome", "CleanupTask", "JobCancellation", "RescheduleJobOptions"),
    "worker_utils": ("WorkerUtils", "quick_add_job"),
    "sync": ("SyncWorkerUtils", "quick_add_job_sync"),
    # tasks and context
    "tasks": (
        "BatchTaskHandler", "PermanentFailure", "TaskDefinition", "TaskFailure", "TaskHandler",
        "TaskOutcome", "TaskRegistry", "TaskSuccess", "define_task", "run_task_from_worker_ctx",
        "task",
    ),
    "context": ("AbortSignal", "WorkerContext"),
    "extensions": ("Extensions", "ReadOnlyExtensions"),
    # worker
    "worker": ("ShutdownSignal", "Worker", "WorkerOptions"),
    "runner": ("Runner", "run"),
    # cron
    "cron": ("Cron", "CronBuilder", "CronJobKeyMode", "Crontab", "CrontabFill", "parse_crontab"),
    # recovery
    "recovery": (
        "INFRASTRUCTURE_RESILIENT_FLAG", "ActiveWorkerRow", "SweepStaleWorkersOptions",
        "SweepStaleWorkersResult", "WorkerRecoveryConfig", "job_has_resilient_flag",
    ),
    # database (the migrate() function lives in graphile_worker_cli.migrate: a submodule
    # and a root attribute of one name would shadow each other)
    "db": ("escape_identifier",),
    # lifecycle hooks
    "hooks": ("BeforeJobRun", "HookRegistry", "HookResult", "JobScheduleResult", "JobStart",
              "Plugin"),
    # errors
    "errors": ("GraphileWorkerError", "JobLockLostError"),
    "version": ("__version__",),
}
"""The one list of the root's names, by the module that defines them. The imports under
TYPE_CHECKING below repeat it for type checkers (tests/unit/test_exports.py keeps the two
equal)."""

_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module_name = _MODULE_OF.get(name)
    if module_name is None:
        raise AttributeError(f"module 'graphile_worker_cli' has no attribute {name!r}")
    module = importlib.import_module(f"graphile_worker_cli.{module_name}")
    value = getattr(module, name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from graphile_worker_cli.context import AbortSignal as AbortSignal
    from graphile_worker_cli.context import WorkerContext as WorkerContext
    from graphile_worker_cli.cron import Cron as Cron
    from graphile_worker_cli.cron import CronBuilder as CronBuilder
    from graphile_worker_cli.cron import CronJobKeyMode as CronJobKeyMode
    from graphile_worker_cli.cron import Crontab as Crontab
    from graphile_worker_cli.cron import CrontabFill as CrontabFill
    from graphile_worker_cli.cron import parse_crontab as parse_crontab
    from graphile_worker_cli.db import escape_identifier as escape_identifier
    from graphile_worker_cli.errors import GraphileWorkerError as GraphileWorkerError
    from graphile_worker_cli.errors import JobLockLostError as JobLockLostError
    from graphile_worker_cli.extensions import Extensions as Extensions
    from graphile_worker_cli.extensions import ReadOnlyExtensions as ReadOnlyExtensions
    from graphile_worker_cli.hooks import BeforeJobRun as BeforeJobRun
    from graphile_worker_cli.hooks import HookRegistry as HookRegistry
    from graphile_worker_cli.hooks import HookResult as HookResult
    from graphile_worker_cli.hooks import JobScheduleResult as JobScheduleResult
    from graphile_worker_cli.hooks import JobStart as JobStart
    from graphile_worker_cli.hooks import Plugin as Plugin
    from graphile_worker_cli.job import Job as Job
    from graphile_worker_cli.job import JobHistoryEntry as JobHistoryEntry
    from graphile_worker_cli.job import JobKeyMode as JobKeyMode
    from graphile_worker_cli.job import JobSpec as JobSpec
    from graphile_worker_cli.job import RawJobSpec as RawJobSpec
    from graphile_worker_cli.job_input import CancelOutcome as CancelOutcome
    from graphile_worker_cli.job_input import CleanupTask as CleanupTask
    from graphile_worker_cli.job_input import JobCancellation as JobCancellation
    from graphile_worker_cli.job_input import RescheduleJobOptions as RescheduleJobOptions
    from graphile_worker_cli.recovery import (
        INFRASTRUCTURE_RESILIENT_FLAG as INFRASTRUCTURE_RESILIENT_FLAG,
    )
    from graphile_worker_cli.recovery import ActiveWorkerRow as ActiveWorkerRow
    from graphile_worker_cli.recovery import SweepStaleWorkersOptions as SweepStaleWorkersOptions
    from graphile_worker_cli.recovery import SweepStaleWorkersResult as SweepStaleWorkersResult
    from graphile_worker_cli.recovery import WorkerRecoveryConfig as WorkerRecoveryConfig
    from graphile_worker_cli.recovery import job_has_resilient_flag as job_has_resilient_flag
    from graphile_worker_cli.runner import Runner as Runner
    from graphile_worker_cli.runner import run as run
    from graphile_worker_cli.sync import SyncWorkerUtils as SyncWorkerUtils
    from graphile_worker_cli.sync import quick_add_job_sync as quick_add_job_sync
    from graphile_worker_cli.tasks import BatchTaskHandler as BatchTaskHandler
    from graphile_worker_cli.tasks import PermanentFailure as PermanentFailure
    from graphile_worker_cli.tasks import TaskDefinition as TaskDefinition
    from graphile_worker_cli.tasks import TaskFailure as TaskFailure
    from graphile_worker_cli.tasks import TaskHandler as TaskHandler
    from graphile_worker_cli.tasks import TaskOutcome as TaskOutcome
    from graphile_worker_cli.tasks import TaskRegistry as TaskRegistry
    from graphile_worker_cli.tasks import TaskSuccess as TaskSuccess
    from graphile_worker_cli.tasks import define_task as define_task
    from graphile_worker_cli.tasks import run_task_from_worker_ctx as run_task_from_worker_ctx
    from graphile_worker_cli.tasks import task as task
    from graphile_worker_cli.version import __version__ as __version__
    from graphile_worker_cli.worker import ShutdownSignal as ShutdownSignal
    from graphile_worker_cli.worker import Worker as Worker
    from graphile_worker_cli.worker import WorkerOptions as WorkerOptions
    from graphile_worker_cli.worker_utils import WorkerUtils as WorkerUtils
    from graphile_worker_cli.worker_utils import quick_add_job as quick_add_job
