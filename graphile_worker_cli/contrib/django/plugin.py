"""Django's database connections recycled around each job, as around each request.

Django closes a request's connections when they are obsolete (``CONN_MAX_AGE`` reached,
0 by default: every request) or unusable, through ``close_old_connections`` on its
``request_started`` and ``request_finished`` signals. A worker has no requests, and its
connections are per thread: a ``def`` task runs in one of gw's pool threads, the ORM of
an ``async def`` task (``sync_to_async``, Django's ``a*`` methods) in asgiref's
thread-sensitive thread. This plugin calls ``close_old_connections`` before and after
each job in both: in the task's own thread around a ``def`` task, and in asgiref's thread
at JobStart and AfterJobRun. ``manage.py gw run`` loads it; add
``"graphile_worker_cli.contrib.django.plugin:DjangoConnections"`` to ``plugins`` when you
run gw's worker some other way in a Django process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from graphile_worker_cli import hooks


@contextmanager
def recycled_connections() -> Iterator[None]:
    """This thread's obsolete connections closed before and after the block."""
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


async def _recycle_async_thread(_: Any) -> None:
    await sync_to_async(close_old_connections, thread_sensitive=True)()


class DjangoConnections:
    """The plugin (see the module)."""

    def register(self, registry: hooks.HookRegistry) -> None:
        registry.around_sync_task(recycled_connections)
        registry.on(hooks.JobStart, _recycle_async_thread)
        registry.on(hooks.AfterJobRun, _recycle_async_thread)
