"""The shapes a task can take: ``TaskHandler``, ``BatchTaskHandler``, ``@task``, and the
outcome types ``TaskSuccess`` / ``TaskFailure``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar, overload

import pydantic

if TYPE_CHECKING:
    from graphile_worker_cli.context import WorkerContext




class TaskHandler(pydantic.BaseModel):
    """A task whose payload is this model: subclass it, set ``IDENTIFIER``, write ``run``.

    ``run`` may return a ``TaskFailure`` or an exception instance (failure) or anything else,
    ``False`` included (success, as in the reference); raising fails the job too. A plain
    ``def run`` runs in a thread.

    ``TIMEOUT`` (a duration such as ``"30s"``) bounds each run; ``BACKOFF(attempts)`` gives
    the wait before the next attempt (seconds or a ``timedelta``); ``MAX_CONCURRENCY`` caps
    the jobs of this task one worker runs at once. See docs/tasks.md.
    """

    IDENTIFIER: ClassVar[str]
    TIMEOUT: ClassVar[str | float | timedelta | None] = None
    BACKOFF: ClassVar[Backoff | None] = None
    MAX_CONCURRENCY: ClassVar[int | None] = None

    async def run(self, ctx: WorkerContext) -> object:
        raise NotImplementedError(f"{type(self).__name__}.run is not implemented")


class BatchTaskHandler(pydantic.BaseModel):
    """A task whose payload is a JSON array of these items, run together.

    ``run_batch`` returns one result per item, in order: None/True for success, an
    exception, a ``TaskFailure``, a string (the error message) or False for failure. Failed
    items become the payload of the retry.
    """

    IDENTIFIER: ClassVar[str]
    TIMEOUT: ClassVar[str | float | timedelta | None] = None
    BACKOFF: ClassVar[Backoff | None] = None
    MAX_CONCURRENCY: ClassVar[int | None] = None

    @classmethod
    async def run_batch(cls, items: list[Self], ctx: WorkerContext) -> Sequence[object]:
        raise NotImplementedError(f"{cls.__name__}.run_batch is not implemented")


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
    return (
        isinstance(obj, type)
        and issubclass(obj, TaskHandler | BatchTaskHandler)
        and obj not in (TaskHandler, BatchTaskHandler)
    )


def declared_identifier(cls: type) -> str | None:
    """The class's ``IDENTIFIER`` if it sets one."""
    value = getattr(cls, "IDENTIFIER", None)
    return value if isinstance(value, str) else None
