"""Lifecycle hooks: observe worker and job events, intercept runs, schedules and recovery.

```python
from graphile_worker_cli import hooks

options.on(hooks.JobStart, lambda ctx: print("starting", ctx.job.id))
options.on(hooks.BeforeJobRun, skip_when_flagged)    # returns hooks.HookResult.SKIP...
options.add_plugin(MyPlugin())                       # MyPlugin.register(registry)
```

Modules: ``events`` (event classes and their context dataclasses), ``results`` (what
interceptors return), ``registry`` (``HookRegistry``), ``plugins`` (loading
``"pkg.module:Plugin"`` names). See docs/hooks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphile_worker_cli.hooks.events import (
        ALL_EVENTS,
        AfterJobRun,
        AfterJobRunContext,
        BeforeJobRun,
        BeforeJobRunContext,
        BeforeJobSchedule,
        BeforeJobScheduleContext,
        CronJobScheduled,
        CronJobScheduledContext,
        CronTick,
        CronTickContext,
        Event,
        Interceptor,
        JobComplete,
        JobCompleteContext,
        JobFail,
        JobFailContext,
        JobFetch,
        JobFetchContext,
        JobInterrupted,
        JobInterruptedContext,
        JobPermanentlyFail,
        JobPermanentlyFailContext,
        JobRecovery,
        JobRecoveryContext,
        JobScheduled,
        JobScheduledContext,
        JobStart,
        JobStartContext,
        LocalQueueGetJobsComplete,
        LocalQueueGetJobsCompleteContext,
        LocalQueueInit,
        LocalQueueInitContext,
        LocalQueueModeChange,
        LocalQueueModeChangeContext,
        LocalQueueRefetchDelayAbort,
        LocalQueueRefetchDelayAbortContext,
        LocalQueueRefetchDelayExpired,
        LocalQueueRefetchDelayExpiredContext,
        LocalQueueRefetchDelayStart,
        LocalQueueRefetchDelayStartContext,
        LocalQueueReturnJobs,
        LocalQueueReturnJobsContext,
        Observer,
        RecoveryReason,
        WorkerInit,
        WorkerInitContext,
        WorkerRecovered,
        WorkerRecoveredContext,
        WorkerShutdown,
        WorkerShutdownContext,
        WorkerStart,
        WorkerStartContext,
    )
from graphile_worker_cli.hooks.plugins import load_plugin, load_plugins
from graphile_worker_cli.hooks.registry import Handler, HookRegistry, Plugin
from graphile_worker_cli.hooks.results import (
    HookResult,
    JobRecoveryResult,
    JobScheduleResult,
    RecoveryAction,
)

# The event classes are imported on first use: a worker without hooks never needs them, and
# building their ~50 classes is a noticeable part of `gw run`'s start-up.
_EVENT_NAMES = frozenset({
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
    "Event",
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
    "WorkerInit",
    "WorkerInitContext",
    "WorkerRecovered",
    "WorkerRecoveredContext",
    "WorkerShutdown",
    "WorkerShutdownContext",
    "WorkerStart",
    "WorkerStartContext",
})


def __getattr__(name: str) -> Any:
    if name in _EVENT_NAMES:
        from graphile_worker_cli.hooks import events

        value = getattr(events, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "Event",
    "Handler",
    "HookRegistry",
    "HookResult",
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
    "JobRecoveryResult",
    "JobScheduleResult",
    "JobScheduled",
    "JobScheduledContext",
    "JobStart",
    "JobStartContext",
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
    "Plugin",
    "RecoveryAction",
    "RecoveryReason",
    "WorkerInit",
    "WorkerInitContext",
    "WorkerRecovered",
    "WorkerRecoveredContext",
    "WorkerShutdown",
    "WorkerShutdownContext",
    "WorkerStart",
    "WorkerStartContext",
    "load_plugin",
    "load_plugins",
]
