"""Per-job costs of the building blocks of gw's hot path, in microseconds (this machine).

    .venv/bin/python -m bench.micro

Compare with the CPU per job in docs/performance.md: they say which per-job object or
scheduling step is worth removing.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import inspect
import logging
import sys
import threading
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphile_worker_cli import context
from graphile_worker_cli.job import Job

NUMBER = 200_000


def _per_call(function: Callable[[], object], number: int = NUMBER) -> float:
    return 1e6 * timeit.timeit(function, number=number) / number


async def _noop() -> None:
    return None


async def _task_per_job(count: int) -> float:
    loop = asyncio.get_running_loop()
    done = 0

    def finished(_task: asyncio.Task[None]) -> None:
        nonlocal done
        done += 1

    started = loop.time()
    for _ in range(count):
        loop.create_task(_noop()).add_done_callback(lambda task: finished(task))
    while done < count:
        await asyncio.sleep(0)
    return 1e6 * (loop.time() - started) / count


async def _slots(count: int, concurrency: int = 24) -> float:
    queue = collections.deque(range(count))
    loop = asyncio.get_running_loop()

    async def slot() -> None:
        while queue:
            queue.popleft()
            await _noop()

    started = loop.time()
    await asyncio.gather(*(slot() for _ in range(concurrency)))
    return 1e6 * (loop.time() - started) / count


def _run(coroutine: Any) -> float:
    try:
        import uvloop
    except ImportError:
        return float(asyncio.run(coroutine))
    return float(uvloop.run(coroutine))


def main() -> int:
    now = datetime.datetime.now(datetime.UTC)
    fields: dict[str, Any] = dict(
        id=1, task_identifier="x", queue_name=None, payload={}, priority=0, run_at=now,
        attempts=1, max_attempts=25, last_error=None, created_at=now, updated_at=now, key=None,
        locked_at=now, locked_by="w", revision=0, flags=None, task_id=1, job_queue_id=None,
    )
    rows = [
        ("Job(...) (frozen slots dataclass, 18 fields)", _per_call(lambda: Job(**fields))),
        ("threading.Event()", _per_call(threading.Event)),
        ("context.AbortSignal()", _per_call(context.AbortSignal)),
        ("logging.getLogger(name)", _per_call(lambda: logging.getLogger("gw.job"))),
        ("inspect.iscoroutinefunction(f)", _per_call(lambda: inspect.iscoroutinefunction(_noop))),
        ("create_task + done callback, per job", _run(_task_per_job(NUMBER))),
        ("24 slot coroutines pulling from a deque, per job", _run(_slots(NUMBER))),
    ]
    for name, micros in rows:
        print(f"{micros:8.2f} µs  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
