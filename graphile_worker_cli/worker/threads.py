"""A thread pool for synchronous task handlers whose threads never hold the process up.

A sync handler cannot be cancelled: when shutdown aborts it, its job is handed back but
its thread runs on. With the standard pool, interpreter exit would wait for that thread;
these daemon threads are simply dropped at exit. ``gw run`` installs this pool as its
event loop's default executor (``asyncio.to_thread`` uses it).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreadExecutor(ThreadPoolExecutor):
    """Up to ``max_workers`` daemon threads, started on demand; ``shutdown`` never waits
    for a call that is still running.

    It subclasses ThreadPoolExecutor only because asyncio's ``set_default_executor``
    demands one; ``submit`` and ``shutdown`` are its own, none of the parent's threads run.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "gw-task") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._limit = max_workers
        self._prefix = thread_name_prefix
        self._calls: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._waiting = 0
        self._closed = False

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> Future[T]:
        future: Future[T] = Future()
        with self._guard:
            if self._closed:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._calls.put((future, fn, args, kwargs))
            if self._waiting == 0 and len(self._workers) < self._limit:
                thread = threading.Thread(
                    target=self._work, name=f"{self._prefix}-{len(self._workers)}", daemon=True
                )
                self._workers.append(thread)
                thread.start()
            else:
                self._waiting -= 1  # a waiting thread takes this call
        return future

    def _work(self) -> None:
        while True:
            item = self._calls.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as error:
                    future.set_exception(error)
                else:
                    future.set_result(result)
            del item, future
            with self._guard:
                self._waiting += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._guard:
            self._closed = True
            threads = list(self._workers)
        for _ in threads:
            self._calls.put(None)
        if wait:
            # Only idle threads are joined; a thread still in a call is left behind.
            for thread in threads:
                thread.join(timeout=0.05)
