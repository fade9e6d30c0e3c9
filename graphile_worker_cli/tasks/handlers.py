"""The handler classes a task can be: ``TaskHandler`` and ``BatchTaskHandler``, pydantic
models of the payload (``@task`` for functions is in ``tasks.marks``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar, Self

import pydantic

from graphile_worker_cli.tasks.marks import Backoff

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
