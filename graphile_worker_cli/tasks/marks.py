"""What ``@task`` marks on a function, and how the loaders recognise a task (a marked
function, or a handler class) without importing pydantic."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])
Backoff = Callable[[int], "float | timedelta"]
"""A task's retry delay: the attempts made so far -> seconds (or a timedelta) to wait."""

TASK_MARK = "__gw_task__"


@dataclass(frozen=True)
class TaskMark:
    """What ``@task`` records on a function."""

    identifier: str | None
    batch: bool
    timeout: str | float | timedelta | None = None
    backoff: Backoff | None = None
    max_concurrency: int | None = None


@overload
def task(identifier: F, /) -> F: ...
@overload
def task(
    identifier: str | None = None, /, *, batch: bool = False,
    timeout: str | float | timedelta | None = None, backoff: Backoff | None = None,
    max_concurrency: int | None = None,
) -> Callable[[F], F]: ...


def task(
    identifier: str | F | None = None, /, *, batch: bool = False,
    timeout: str | float | timedelta | None = None, backoff: Backoff | None = None,
    max_concurrency: int | None = None,
) -> F | Callable[[F], F]:
    """Mark a function as a task: ``@task``, ``@task("send_email")`` or
    ``@task("index", batch=True)``. The function is returned unchanged (still callable in
    tests); ``load_task_modules`` finds it, ``define_task`` reads the mark. Without an
    identifier the function's name is used. ``timeout`` bounds each run (``"30s"``);
    ``backoff(attempts)`` gives the wait before the next attempt; ``max_concurrency``
    caps the jobs of this task one worker runs at once."""
    if callable(identifier):
        setattr(identifier, TASK_MARK, TaskMark(None, batch))
        return identifier

    def mark(function: F) -> F:
        setattr(function, TASK_MARK,
                TaskMark(identifier, batch, timeout, backoff, max_concurrency))
        return function

    return mark


def task_mark(obj: object) -> TaskMark | None:
    mark = getattr(obj, TASK_MARK, None)
    return mark if isinstance(mark, TaskMark) else None


def is_handler_class(obj: object) -> bool:
    """A concrete subclass of TaskHandler or BatchTaskHandler (not the bases themselves)."""
    # Without the handlers module imported no class can subclass them: a worker whose tasks
    # are functions never imports it (nor pydantic, which the handler bases are built on).
    handlers = sys.modules.get("graphile_worker_cli.tasks.handlers")
    if handlers is None or not isinstance(obj, type):
        return False
    bases = (handlers.TaskHandler, handlers.BatchTaskHandler)
    return issubclass(obj, bases) and obj not in bases


def declared_identifier(cls: type) -> str | None:
    """The class's ``IDENTIFIER`` if it sets one."""
    value = getattr(cls, "IDENTIFIER", None)
    return value if isinstance(value, str) else None
