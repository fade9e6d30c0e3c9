"""Driver errors into gw's errors, each one line, whichever driver raised them."""

from __future__ import annotations

from graphile_worker_cli import job
from graphile_worker_cli.errors import BadInputError, DatabaseError, GraphileWorkerError

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


def translate(error: BaseException, schema: str) -> GraphileWorkerError:
    """gw's error for any error a driver raised while running a statement."""
    inner = driver_error(error)
    code = sqlstate(error)
    if code is None and type(inner).__name__ in CONNECTION_ERROR_NAMES:
        return DatabaseError(f"database connection failed: {first_line(inner)}")
    return classify(code, first_line(inner), schema)


def job_key_mode_error() -> BadInputError:
    valid = ", ".join(mode.value for mode in job.JobKeyMode)
    return BadInputError(f"unknown job key mode: expected one of {valid}")
