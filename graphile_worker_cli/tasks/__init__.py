"""Task handlers, their definitions, the registry, and loading tasks from files, modules
and entry points. See docs/tasks.md.

``TaskHandler`` and ``BatchTaskHandler`` (pydantic models) are imported on first use: a
worker whose tasks are functions does not import pydantic.
"""

from typing import TYPE_CHECKING, Any

from graphile_worker_cli.task_outcome import (
    NO_REPLACEMENT,
    PermanentFailure,
    TaskFailure,
    TaskOutcome,
    TaskSuccess,
)
from graphile_worker_cli.tasks.definition import (
    TaskDefinition,
    define_task,
    run_task_from_worker_ctx,
)
from graphile_worker_cli.tasks.loading import (
    ENTRY_POINT_GROUP,
    load_entry_point_tasks,
    load_task_modules,
    load_tasks,
    load_tasks_directory,
    module_tasks,
)
from graphile_worker_cli.tasks.marks import task
from graphile_worker_cli.tasks.outcomes import describe_error, outcome_of, task_outcome
from graphile_worker_cli.tasks.registry import TaskRegistry

if TYPE_CHECKING:
    from graphile_worker_cli.tasks.handlers import BatchTaskHandler, TaskHandler


def __getattr__(name: str) -> Any:
    if name in ("TaskHandler", "BatchTaskHandler"):
        from graphile_worker_cli.tasks import handlers

        return getattr(handlers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ENTRY_POINT_GROUP",
    "NO_REPLACEMENT",
    "BatchTaskHandler",
    "PermanentFailure",
    "TaskDefinition",
    "TaskFailure",
    "TaskHandler",
    "TaskOutcome",
    "TaskRegistry",
    "TaskSuccess",
    "define_task",
    "describe_error",
    "load_entry_point_tasks",
    "load_task_modules",
    "load_tasks",
    "load_tasks_directory",
    "module_tasks",
    "outcome_of",
    "run_task_from_worker_ctx",
    "task",
    "task_outcome",
]
