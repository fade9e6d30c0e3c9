"""Connections to PostgreSQL: connecting, pools, identifier quoting, error translation.

Every other module gets its connections from here, so a bad URL or an unreachable
server becomes one clear ``DatabaseConnectError`` instead of a driver traceback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from graphile_worker_cli import conninfo, job
from graphile_worker_cli.conninfo import redact_url as redact_url
from graphile_worker_cli.conninfo import scrub_password as scrub_password
from graphile_worker_cli.errors import (
    BadInputError,
    DatabaseConnectError,
    DatabaseError,
    GraphileWorkerError,
)

DEFAULT_SCHEMA = "graphile_worker"
CONNECT_TIMEOUT_SECONDS = 10.0

_log = logging.getLogger("gw.db")
T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # Raised when a connection broke in the middle of an operation (pool reset included).
    asyncpg.exceptions.InternalClientError,
    DatabaseConnectError,
)
"""Errors a retry after a pause can cure: lost connections, a restarting server... (the
one list: the worker's backoff and the recovery side task both retry on these)."""

Connection = asyncpg.Connection
Pool = asyncpg.Pool


def escape_identifier(name: str) -> str:
    """Quote an SQL identifier (schema, table) so any name, even ``odd "name"``, is safe."""
    if not name:
        raise BadInputError("an SQL identifier must not be empty")
    if "\x00" in name:
        raise BadInputError(f"invalid SQL identifier {name!r}: it contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def _encoding_hint(url: str) -> str:
    """Advice for a URL whose user info holds characters a URL parser stops at."""
    span = conninfo.password_span(url)
    if span is None or not any(char in url[span[0]:span[1]] for char in "/?#@"):
        return ""
    return (
        "; percent-encode '/', '?', '#' and '@' in the user name and password "
        "(%2F, %3F, %23, %40)"
    )


def validate_url(url: str) -> None:
    """Reject connection strings that are not PostgreSQL URLs before trying to connect."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in ("postgres", "postgresql"):
        raise BadInputError(
            f"invalid connection string {redact_url(url)!r}: "
            "expected a URL like postgres://user:password@host:5432/database"
        )
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as error:
        reason = scrub_password(str(error), url) + _encoding_hint(url)
        raise BadInputError(
            f"invalid connection string {redact_url(url)!r}: {reason}; "
            "expected a URL like postgres://user:password@host:5432/database"
        ) from None


def _connect_error(url: str, error: BaseException) -> DatabaseConnectError:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    detail = scrub_password(detail, url)
    if isinstance(error, ssl.SSLError):
        detail = f"TLS failed ({detail})"
    elif isinstance(error, ConnectionError) and "rejected SSL upgrade" in detail:
        detail = f"the server does not offer TLS ({detail})"
    elif isinstance(error, socket.gaierror | ConnectionRefusedError | OSError | TimeoutError):
        detail = f"server unreachable ({detail})"
    target = conninfo.describe(redact_url(url))
    return DatabaseConnectError(f"could not connect to {target}: {detail}{_encoding_hint(url)}")


def server_may_come_up(error: DatabaseConnectError) -> bool:
    """True when the server was not there yet (connection refused, host unreachable or not
    resolvable yet, starting up, shutting down, out of connections): waiting may cure it.
    A wrong password or database name will not."""
    return isinstance(error.__cause__, (
        OSError, TimeoutError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
    ))


async def when_reachable(
    attempt: Callable[[], Awaitable[T]], wait: float, what: str = "starting"
) -> T:
    """Run ``attempt``; while it fails because the server is not reachable yet, retry with
    backoff for up to ``wait`` seconds in all, then let the last error through. ``wait`` 0
    tries once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    failures = 0
    while True:
        try:
            return await attempt()
        except DatabaseConnectError as error:
            remaining = deadline - loop.time()
            if remaining <= 0 or not server_may_come_up(error):
                raise
            failures += 1
            pause = min(remaining, 5.0, 0.25 * 2 ** (failures - 1))
            _log.warning(
                "%s: database not reachable yet (%s); retrying in %.1fs, for up to %gs in all",
                what, error.message, pause, wait,
                extra={"gw": {"action": "database_wait", "attempt": failures}},
            )
            await asyncio.sleep(pause)


_CONNECT_ERRORS = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.ClientConfigurationError,
    ValueError,
)


def _driver_arguments(url: str, kwargs: dict[str, Any]) -> str:
    """The DSN for asyncpg; node-postgres's ``ssl``/``sslmode`` parameters become its
    ``ssl`` argument in ``kwargs`` (unless the caller gave one)."""
    validate_url(url)
    kwargs.setdefault("timeout", CONNECT_TIMEOUT_SECONDS)
    arguments = conninfo.connect_arguments(url)
    if arguments.ssl is not None:
        kwargs.setdefault("ssl", arguments.ssl)
    return arguments.dsn


def statement_cache(prepared_statements: bool) -> dict[str, Any]:
    """Connection arguments for ``prepared_statements``: off, nothing is prepared under a
    name (a transaction pooler such as PgBouncer would run it on another server session)."""
    return {} if prepared_statements else {"statement_cache_size": 0}


async def connect(url: str, **kwargs: Any) -> asyncpg.Connection:
    """Open one connection; any failure is a DatabaseConnectError with a one-line reason.
    ``url`` may be ``conninfo.FROM_ENVIRONMENT``: the PG* variables say where."""
    try:
        dsn = _driver_arguments(url, kwargs)
        return await asyncpg.connect(dsn, **kwargs)
    except _CONNECT_ERRORS as error:
        raise _connect_error(url, error) from error


async def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any
) -> asyncpg.Pool:
    """Open a pool (at least one connection is made, so a bad URL fails here)."""
    try:
        dsn = _driver_arguments(url, kwargs)
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, **kwargs
        )
    except _CONNECT_ERRORS as error:
        raise _connect_error(url, error) from error
    return pool


@asynccontextmanager
async def connection(url: str, **kwargs: Any) -> AsyncIterator[asyncpg.Connection]:
    """``async with db.connection(url) as conn:`` — a connection closed on exit."""
    conn = await connect(url, **kwargs)
    try:
        yield conn
    finally:
        await conn.close()


def release_soon(
    pool: asyncpg.Pool, conn: asyncpg.Connection, pending: set[asyncio.Task[None]]
) -> None:
    """Give ``conn`` back to ``pool`` in the background: asyncpg resets a connection on
    release (one more round trip), which the caller need not wait for. ``pending`` holds
    the release until it is done (the loop keeps only weak references to tasks); await its
    tasks, or ``pool.close()``, to wait for them."""
    task = asyncio.get_running_loop().create_task(pool.release(conn))
    pending.add(task)
    task.add_done_callback(lambda done: _released(done, pending))


def _released(task: asyncio.Task[None], pending: set[asyncio.Task[None]]) -> None:
    pending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # asyncpg terminates a connection it cannot reset; nothing else to do.
        _log.debug("releasing a connection failed: %s", task.exception())


# --- driver errors into gw's errors -------------------------------------------------------
# Whichever driver ran the statement (asyncpg here, psycopg, psycopg2, SQLAlchemy or Django
# through ``drivers``), a refused statement becomes one of gw's one-line errors.

NOT_MIGRATED = frozenset({"3F000", "42P01", "42883", "42704"})
"""SQLSTATEs of a missing schema, table, function or type."""

CONNECTION_ERROR_NAMES = frozenset({"InterfaceError", "OperationalError"})
"""DB-API error classes that, without an SQLSTATE, mean the connection failed."""


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver error: asyncpg and psycopg say ``sqlstate``, psycopg2
    ``pgcode``; SQLAlchemy keeps the driver's error in ``orig``, Django in ``__cause__``."""
    seen: BaseException | None = error
    for _ in range(4):
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str) and code:
            return code
        orig = getattr(seen, "orig", None)
        seen = orig if isinstance(orig, BaseException) else seen.__cause__
    return None


def driver_error(error: BaseException) -> BaseException:
    """The innermost driver error (SQLAlchemy's ``orig``, Django's ``__cause__``)."""
    orig = getattr(error, "orig", None)
    if isinstance(orig, BaseException):
        return orig
    if type(error).__module__.startswith("django.") and error.__cause__ is not None:
        return error.__cause__
    return error


def classify(code: str | None, line: str, schema: str) -> GraphileWorkerError:
    """gw's error for a statement the server refused with SQLSTATE ``code``."""
    if code == "GWBKM":
        return job_key_mode_error()
    if code in NOT_MIGRATED:
        return DatabaseError(
            f"the Graphile Worker schema {schema!r} is missing or not fully migrated "
            f"({line}); run `gw migrate`"
        )
    if code is not None and (code.startswith("22") or code.startswith("23")):
        # data exceptions and integrity violations come from values the caller gave
        return BadInputError(f"the database rejected a value: {line}")
    return DatabaseError(f"database error: {line}")


def translate_error(error: BaseException, schema: str) -> GraphileWorkerError:
    """gw's error for any error a driver raised while running a statement."""
    inner = driver_error(error)
    code = sqlstate(error)
    if code is None and type(inner).__name__ in CONNECTION_ERROR_NAMES:
        return DatabaseError(f"database connection failed: {first_line(inner)}")
    return classify(code, first_line(inner), schema)


def job_key_mode_error() -> BadInputError:
    valid = ", ".join(mode.value for mode in job.JobKeyMode)
    return BadInputError(f"unknown job key mode: expected one of {valid}")


@contextmanager
def database_errors(schema: str) -> Iterator[None]:
    """Translate asyncpg errors raised inside the block into gw's errors, each one line
    (``BadInputError`` for values the database refused, ``DatabaseError`` otherwise)."""
    try:
        yield
    except asyncpg.PostgresError as error:
        raise translate_error(error, schema) from error
    except (asyncpg.InterfaceError, OSError) as error:
        raise DatabaseError(f"database connection failed: {first_line(error)}") from error
