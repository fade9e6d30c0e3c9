"""Each kind of caller connection gw joins, opened with its real driver, behind one
interface: a transaction that writes an application row and adds jobs, then commits or
rolls back. Blocking drivers run on one thread of their own (Django-style thread
affinity holds, and the test's event loop stays free)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import asyncpg
import psycopg
import psycopg2
import sqlalchemy
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from graphile_worker_cli import job, sync
from graphile_worker_cli.worker_utils import WorkerUtils

T = TypeVar("T")
SCHEMA = "graphile_worker"
ORDER_SQL = "insert into orders (note) values ('order-1')"
"""The application's own write, in the same transaction as the job."""


def sqlalchemy_url(url: str, driver: str) -> str:
    return "postgresql+" + driver + "://" + url.split("://", 1)[1]


class Txn:
    """One open connection of some kind, used the way an application would."""

    name: str
    conn: Any
    gw: Any
    """The kind's API: a ``SyncWorkerUtils`` or a ``WorkerUtils``, without a pool."""

    async def write_order(self) -> None:
        raise NotImplementedError

    async def add_job(
        self, identifier: str, payload: Any, spec: job.JobSpec | None = None
    ) -> job.Job:
        raise NotImplementedError

    async def add_jobs(self, items: list[tuple[str, Any]]) -> list[job.Job]:
        raise NotImplementedError

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``method`` of this kind's API (WorkerUtils or SyncWorkerUtils) with ``conn=``."""
        raise NotImplementedError

    async def commit(self) -> None:
        raise NotImplementedError

    async def rollback(self) -> None:
        raise NotImplementedError


class SyncTxn(Txn):
    """A blocking connection: every call runs on the kind's own thread."""

    gw: sync.SyncWorkerUtils

    def __init__(self, name: str, conn: Any, thread: concurrent.futures.Executor,
                 write: Callable[[], None], commit: Callable[[], None],
                 rollback: Callable[[], None]) -> None:
        self.name, self.conn, self._thread = name, conn, thread
        self._write, self._commit, self._rollback = write, commit, rollback
        self.gw = sync.SyncWorkerUtils(schema=SCHEMA)

    async def _on_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def write_order(self) -> None:
        await self._on_thread(self._write)

    async def add_job(
        self, identifier: str, payload: Any, spec: job.JobSpec | None = None
    ) -> job.Job:
        return await self._on_thread(
            lambda: self.gw.add_job(identifier, payload, spec, conn=self.conn)
        )

    async def add_jobs(self, items: list[tuple[str, Any]]) -> list[job.Job]:
        return await self._on_thread(lambda: self.gw.add_jobs(items, conn=self.conn))

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        bound = getattr(self.gw, method)
        return await self._on_thread(lambda: bound(*args, conn=self.conn, **kwargs))

    async def commit(self) -> None:
        await self._on_thread(self._commit)

    async def rollback(self) -> None:
        await self._on_thread(self._rollback)


class AsyncTxn(Txn):
    gw: WorkerUtils

    def __init__(self, name: str, conn: Any, write: Callable[[], Any],
                 commit: Callable[[], Any], rollback: Callable[[], Any]) -> None:
        self.name, self.conn = name, conn
        self._write, self._commit, self._rollback = write, commit, rollback
        self.gw = WorkerUtils(schema=SCHEMA)

    async def write_order(self) -> None:
        await self._write()

    async def add_job(
        self, identifier: str, payload: Any, spec: job.JobSpec | None = None
    ) -> job.Job:
        return await self.gw.add_job(identifier, payload, spec, conn=self.conn)

    async def add_jobs(self, items: list[tuple[str, Any]]) -> list[job.Job]:
        return await self.gw.add_jobs(items, conn=self.conn)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.gw, method)(*args, conn=self.conn, **kwargs)

    async def commit(self) -> None:
        await self._commit()

    async def rollback(self) -> None:
        await self._rollback()


@asynccontextmanager
async def _thread() -> AsyncIterator[concurrent.futures.ThreadPoolExecutor]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kind")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True)


def _discard(_: object) -> None:
    return None


async def _run(pool: concurrent.futures.Executor, fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(pool, fn)


@asynccontextmanager
async def psycopg_sync(url: str) -> AsyncIterator[Txn]:
    async with _thread() as pool:
        conn = await _run(pool, lambda: psycopg.connect(url))
        try:
            yield SyncTxn("psycopg Connection", conn, pool,
                          lambda: _discard(conn.execute(ORDER_SQL)), conn.commit, conn.rollback)
        finally:
            await _run(pool, conn.close)


@asynccontextmanager
async def psycopg2_sync(url: str) -> AsyncIterator[Txn]:
    async with _thread() as pool:
        conn = await _run(pool, lambda: psycopg2.connect(url))

        def write() -> None:
            with conn.cursor() as cursor:
                cursor.execute(ORDER_SQL)

        try:
            yield SyncTxn("psycopg2 connection", conn, pool, write, conn.commit, conn.rollback)
        finally:
            await _run(pool, conn.close)


@asynccontextmanager
async def sqlalchemy_connection(url: str) -> AsyncIterator[Txn]:
    async with _thread() as pool:
        engine = sqlalchemy.create_engine(sqlalchemy_url(url, "psycopg"))
        conn = await _run(pool, engine.connect)
        try:
            yield SyncTxn("SQLAlchemy Connection (psycopg)", conn, pool,
                          lambda: _discard(conn.exec_driver_sql(ORDER_SQL)),
                          conn.commit, conn.rollback)
        finally:
            await _run(pool, conn.close)
            await _run(pool, engine.dispose)


@asynccontextmanager
async def sqlalchemy_session(url: str) -> AsyncIterator[Txn]:
    async with _thread() as pool:
        engine = sqlalchemy.create_engine(sqlalchemy_url(url, "psycopg2"))
        session = Session(engine)
        try:
            yield SyncTxn("SQLAlchemy Session (psycopg2)", session, pool,
                          lambda: _discard(session.execute(sqlalchemy.text(ORDER_SQL))),
                          session.commit, session.rollback)
        finally:
            await _run(pool, session.close)
            await _run(pool, engine.dispose)


@asynccontextmanager
async def asyncpg_async(url: str) -> AsyncIterator[Txn]:
    conn = await asyncpg.connect(url)
    transaction = conn.transaction()
    await transaction.start()

    async def write() -> None:
        await conn.execute(ORDER_SQL)

    try:
        yield AsyncTxn("asyncpg Connection", conn, write, transaction.commit,
                       transaction.rollback)
    finally:
        await conn.close()


@asynccontextmanager
async def psycopg_async(url: str) -> AsyncIterator[Txn]:
    conn = await psycopg.AsyncConnection.connect(url)

    async def write() -> None:
        await conn.execute(ORDER_SQL)

    try:
        yield AsyncTxn("psycopg AsyncConnection", conn, write, conn.commit, conn.rollback)
    finally:
        await conn.close()


@asynccontextmanager
async def sqlalchemy_async_connection(url: str) -> AsyncIterator[Txn]:
    engine = create_async_engine(sqlalchemy_url(url, "asyncpg"))
    conn: AsyncConnection = await engine.connect()

    async def write() -> None:
        await conn.exec_driver_sql(ORDER_SQL)

    try:
        yield AsyncTxn("SQLAlchemy AsyncConnection (asyncpg)", conn, write, conn.commit,
                       conn.rollback)
    finally:
        await conn.close()
        await engine.dispose()


@asynccontextmanager
async def sqlalchemy_async_session(url: str) -> AsyncIterator[Txn]:
    engine = create_async_engine(sqlalchemy_url(url, "psycopg"))
    session = AsyncSession(engine)

    async def write() -> None:
        await session.execute(sqlalchemy.text(ORDER_SQL))

    try:
        yield AsyncTxn("SQLAlchemy AsyncSession (psycopg)", session, write, session.commit,
                       session.rollback)
    finally:
        await session.close()
        await engine.dispose()


_django_lock = threading.Lock()


def _django_alias(url: str) -> str:
    """A Django database alias on ``url``, added to the connections of this process.

    Django is configured once, in this process, with no apps and no database of its
    own; each test's database is an alias of its own (connections are per thread)."""
    import django
    from django.conf import settings
    from django.db import connections

    with _django_lock:
        if not settings.configured:
            settings.configure(DATABASES={}, USE_TZ=True, INSTALLED_APPS=[])
            django.setup()
        parts = urlsplit(url)
        alias = f"kind_{uuid.uuid4().hex}"
        configured = connections.configure_settings({"default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }})
        connections.settings[alias] = configured["default"]
        return alias


@asynccontextmanager
async def django_atomic(url: str) -> AsyncIterator[Txn]:
    """``django.db.connections[alias]`` inside ``transaction.atomic()``, as a view has it."""
    from django.db import connections, transaction

    alias = _django_alias(url)
    async with _thread() as pool:
        conn = await _run(pool, lambda: connections[alias])
        block = transaction.atomic(using=alias)
        await _run(pool, block.__enter__)

        def write() -> None:
            with conn.cursor() as cursor:
                cursor.execute(ORDER_SQL)

        def rollback() -> None:
            transaction.set_rollback(True, using=alias)
            block.__exit__(None, None, None)

        try:
            yield SyncTxn("Django connection", conn, pool, write,
                          lambda: block.__exit__(None, None, None), rollback)
        finally:
            await _run(pool, conn.close)
            with _django_lock:
                del connections.settings[alias]


KINDS = {
    "django": django_atomic,
    "psycopg": psycopg_sync,
    "psycopg2": psycopg2_sync,
    "sqlalchemy": sqlalchemy_connection,
    "sqlalchemy_session": sqlalchemy_session,
    "asyncpg": asyncpg_async,
    "psycopg_async": psycopg_async,
    "sqlalchemy_async": sqlalchemy_async_connection,
    "sqlalchemy_async_session": sqlalchemy_async_session,
}
"""Every kind of connection gw joins. Django runs here configured in-process (an alias per
test database); the Django integration itself has a test project of its own
(tests/django_project)."""

Opener = Callable[[str], AbstractAsyncContextManager[Txn]]
"""One of ``KINDS``: opens a connection of its kind on a URL, as a ``Txn``."""
