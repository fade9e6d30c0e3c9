"""``HookRegistry.around_sync_task``: a guard entered around each ``def`` task, in the
thread the task runs in (what the Django plugin recycles connections with)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from graphile_worker_cli.context import AbortSignal, Extensions, WorkerContext
from graphile_worker_cli.hooks import HookRegistry
from graphile_worker_cli.task_outcome import TaskFailure, TaskSuccess
from graphile_worker_cli.tasks import define_task
from tests.helpers.context import make_job


def _context(registry: HookRegistry) -> WorkerContext:
    return WorkerContext(
        job=make_job({}), pool=None, schema="graphile_worker",
        worker_id="test-worker", extensions=Extensions(), abort_signal=AbortSignal(),
        hooks=registry,
    )


async def test_a_guard_wraps_a_sync_task_in_its_own_thread() -> None:
    seen: list[tuple[str, int]] = []

    @contextmanager
    def guard() -> Iterator[None]:
        seen.append(("enter", threading.get_ident()))
        try:
            yield
        finally:
            seen.append(("exit", threading.get_ident()))

    def task(payload: Any, ctx: Any) -> None:
        seen.append(("task", threading.get_ident()))
        raise ValueError("boom")

    registry = HookRegistry().around_sync_task(guard)
    assert registry.active
    outcome = await define_task(task, "t")(_context(registry))
    assert isinstance(outcome, TaskFailure) and "boom" in outcome.message
    assert [step for step, _ in seen] == ["enter", "task", "exit"]
    threads = {thread for _, thread in seen}
    assert len(threads) == 1 and threading.get_ident() not in threads


async def test_an_async_task_is_not_guarded() -> None:
    entered: list[int] = []

    @contextmanager
    def guard() -> Iterator[None]:
        entered.append(1)
        yield

    async def task(payload: Any, ctx: Any) -> None:
        return None

    registry = HookRegistry().around_sync_task(guard)
    assert isinstance(await define_task(task, "t")(_context(registry)), TaskSuccess)
    assert entered == []
    assert HookRegistry().merge(registry).sync_task_guards == (guard,)
