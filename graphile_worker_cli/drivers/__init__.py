"""The jobs API on a caller's own connection, whatever its driver.

``WorkerUtils`` takes ``conn=`` an asyncpg ``Connection``, a psycopg 3 ``AsyncConnection``,
a SQLAlchemy ``AsyncConnection`` or ``AsyncSession``; ``SyncWorkerUtils`` a psycopg 3
``Connection``, a psycopg2 connection, a Django connection (``django.db.connection``,
``connections[alias]``), a SQLAlchemy ``Connection`` or ``Session``. The kind is told from
the class names of the object (no driver is imported to find out), and the module for that
kind, which imports its driver, is loaded only then: ``gw run`` never imports psycopg,
Django or SQLAlchemy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from graphile_worker_cli.drivers.base import AsyncExecutor, SyncExecutor, run_async, run_sync
from graphile_worker_cli.errors import BadInputError

__all__ = [
    "AsyncExecutor",
    "Kind",
    "SyncExecutor",
    "async_executor",
    "kind_of",
    "no_transaction_error",
    "run_async",
    "run_sync",
    "sync_executor",
]


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of connection gw can run statements on."""

    name: str
    """How messages call it, e.g. "psycopg Connection"."""
    is_async: bool
    module: str
    """The module under ``graphile_worker_cli.drivers`` with its executor."""
    executor: str


# (top-level package, class name) found in the connection's MRO -> its kind.
_KINDS: dict[tuple[str, str], Kind] = {
    ("asyncpg", "Connection"): Kind("asyncpg Connection", True, "asyncpg_conn", "AsyncpgExecutor"),
    ("asyncpg", "PoolConnectionProxy"): Kind(
        "asyncpg pool connection", True, "asyncpg_conn", "AsyncpgExecutor"
    ),
    ("psycopg", "Connection"): Kind("psycopg Connection", False, "psycopg_conn", "PsycopgExecutor"),
    ("psycopg", "AsyncConnection"): Kind(
        "psycopg AsyncConnection", True, "psycopg_conn", "PsycopgAsyncExecutor"
    ),
    ("psycopg2", "connection"): Kind(
        "psycopg2 connection", False, "psycopg2_conn", "Psycopg2Executor"
    ),
    ("django", "BaseDatabaseWrapper"): Kind(
        "Django connection", False, "django_conn", "DjangoExecutor"
    ),
    ("django", "ConnectionProxy"): Kind(
        "Django connection", False, "django_conn", "DjangoExecutor"
    ),
    ("sqlalchemy", "Connection"): Kind(
        "SQLAlchemy Connection", False, "sqlalchemy_conn", "SqlalchemyExecutor"
    ),
    ("sqlalchemy", "Session"): Kind(
        "SQLAlchemy Session", False, "sqlalchemy_conn", "SqlalchemyExecutor"
    ),
    ("sqlalchemy", "scoped_session"): Kind(
        "SQLAlchemy scoped_session", False, "sqlalchemy_conn", "SqlalchemyExecutor"
    ),
    ("sqlalchemy", "AsyncConnection"): Kind(
        "SQLAlchemy AsyncConnection", True, "sqlalchemy_conn", "SqlalchemyAsyncExecutor"
    ),
    ("sqlalchemy", "AsyncSession"): Kind(
        "SQLAlchemy AsyncSession", True, "sqlalchemy_conn", "SqlalchemyAsyncExecutor"
    ),
    ("sqlalchemy", "async_scoped_session"): Kind(
        "SQLAlchemy async_scoped_session", True, "sqlalchemy_conn", "SqlalchemyAsyncExecutor"
    ),
}

_ASYNC_KINDS = "an asyncpg Connection, a psycopg AsyncConnection, or a SQLAlchemy " \
    "AsyncConnection or AsyncSession"
_SYNC_KINDS = "a psycopg Connection, a psycopg2 connection, a Django connection, or a " \
    "SQLAlchemy Connection or Session"
_ENGINES = {"Engine", "AsyncEngine", "Pool", "ConnectionPool", "AsyncConnectionPool"}


def kind_of(conn: object) -> Kind | None:
    """The kind of ``conn``, from its class and base classes' names alone."""
    for cls in type(conn).__mro__:
        kind = _KINDS.get((cls.__module__.split(".", 1)[0], cls.__name__))
        if kind is not None:
            return kind
    return None


def async_executor(conn: object, schema: str) -> AsyncExecutor:
    """An executor for an async connection; BadInputError names what is accepted."""
    kind = _kind(conn, _ASYNC_KINDS, "WorkerUtils")
    if not kind.is_async:
        raise BadInputError(
            f"conn= is a {kind.name}, which is synchronous: pass it to SyncWorkerUtils "
            f"(WorkerUtils takes {_ASYNC_KINDS})"
        )
    executor: AsyncExecutor = _executor_class(kind)(conn, schema)
    return executor


def sync_executor(conn: object, schema: str) -> SyncExecutor:
    """An executor for a blocking connection; BadInputError names what is accepted."""
    kind = _kind(conn, _SYNC_KINDS, "SyncWorkerUtils")
    if kind.is_async:
        raise BadInputError(
            f"conn= is a {kind.name}, which is asynchronous: pass it to WorkerUtils "
            f"(SyncWorkerUtils takes {_SYNC_KINDS})"
        )
    executor: SyncExecutor = _executor_class(kind)(conn, schema)
    return executor


def no_transaction_error(conn: object, method: str) -> BadInputError:
    """For a method that must run inside the caller's transaction (several statements
    that stand or fall together), given a connection that commits each one on its own."""
    kind = kind_of(conn)
    name = kind.name if kind else type(conn).__qualname__
    return BadInputError(
        f"{method}(conn=...) runs inside your transaction, but the {name} has none open "
        "(each statement would commit on its own): open one first, e.g. Django's "
        "transaction.atomic(), psycopg's conn.transaction() or autocommit off"
    )


def _kind(conn: object, accepted: str, api: str) -> Kind:
    kind = kind_of(conn)
    if kind is not None:
        return kind
    name = f"{type(conn).__module__}.{type(conn).__qualname__}"
    hint = ""
    if type(conn).__name__ in _ENGINES:
        hint = " (an engine or pool has no transaction: pass one of its connections)"
    raise BadInputError(f"conn= got a {name}{hint}; {api} takes {accepted}")


def _executor_class(kind: Kind) -> Any:
    module = importlib.import_module(f"graphile_worker_cli.drivers.{kind.module}")
    return getattr(module, kind.executor)
