"""Migrations: the 20 steps of Graphile Worker 0.18.0's schema, then gw's own.

The reference's steps live in ``sql/migrations/NNNNNN.sql`` and are recorded in the
``migrations`` ledger exactly as the reference records them, so Node and Python workers can
migrate the same database in any order. gw's own additions live in
``sql/gw/NNNNNN_name.sql`` and are recorded in a separate ledger, ``_gw_migrations``: they
never take a number in ``migrations``, so a future reference migration 21 cannot collide
with them.

Every step runs in its own transaction and inserts its ledger row first. Two processes
migrating at once therefore never both apply a step: the second one blocks on the row, and
when the first commits it gets a unique violation and treats the step as done.

``migrate_in_transaction`` is the same migration as an operation (``operations``) for a
caller's connection of any driver (``WorkerUtils.migrate(conn=...)``): everything runs
inside the caller's open transaction, under the migration lock (held until that
transaction ends), each step in a savepoint instead of a transaction of its own; nothing
exists until the caller commits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from graphile_worker_cli import db
from graphile_worker_cli.drivers import asyncpg_conn
from graphile_worker_cli.errors import (
    GraphileWorkerError,
    MigrationError,
    SchemaTooNewError,
    UnsupportedServerError,
)
from graphile_worker_cli.operations import Operation, Statement
from graphile_worker_cli.protocol import LATEST_MIGRATION as LATEST_MIGRATION
from graphile_worker_cli.protocol import PROTOCOL_VERSION as PROTOCOL_VERSION
from graphile_worker_cli.queries import migrate as queries

if TYPE_CHECKING:
    from graphile_worker_cli import config

logger = logging.getLogger("gw.migrate")

BREAKING_MIGRATIONS: tuple[int, ...] = (1, 3, 11, 13, 14, 16, 19)
MINIMUM_SERVER_VERSION_NUM = 120000

SQL_DIR = Path(__file__).resolve().parent / "sql"
REFERENCE_MIGRATIONS_DIR = SQL_DIR / "migrations"
GW_MIGRATIONS_DIR = SQL_DIR / "gw"

MIGRATE_CHANNEL = queries.MIGRATE_CHANNEL
SCHEMA_PLACEHOLDER = "__SCHEMA__"

_REFERENCE_FILE = re.compile(r"^(\d{6})\.sql$")
_GW_FILE = re.compile(r"^(\d{6})_([a-z0-9_]+)\.sql$")

# "Someone else created it": a concurrent migrator won the race to create the schema or ledger.
_CLASH_CODES = frozenset({"23505", "42P06", "42P07", "42710"})
_LOCKED_JOBS_CODE = "GWL11"
_BOOTSTRAP_ATTEMPTS = 5
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    number: int
    name: str
    path: Path
    breaking: bool = False

    def sql(self, schema: str) -> str:
        """The file's SQL for ``schema`` (the placeholder replaced by the quoted name)."""
        text = self.path.read_text(encoding="utf-8")
        quoted = db.escape_identifier(schema)
        if "$$" in quoted:
            # The schema name would end the $$-quoted function bodies early: use a tag
            # that occurs neither in the name nor in the file.
            text = text.replace("$$", _dollar_tag(quoted, text))
        return text.replace(SCHEMA_PLACEHOLDER, quoted)


@dataclass(frozen=True)
class MigrationStatus:
    """Where a schema stands. ``None`` means no ledger (or an empty one)."""

    schema: str
    latest: int | None
    latest_breaking: int | None
    gw_latest: int | None

    @property
    def too_new(self) -> bool:
        return self.latest_breaking is not None and self.latest_breaking > LATEST_MIGRATION

    @property
    def newer_non_breaking(self) -> bool:
        return not self.too_new and self.latest is not None and self.latest > LATEST_MIGRATION


@dataclass(frozen=True)
class MigrationResult:
    """What one ``apply_migrations`` call did, and the status it left."""

    status: MigrationStatus
    applied: list[int] = field(default_factory=list)
    gw_applied: list[int] = field(default_factory=list)


def _dollar_tag(*texts: str) -> str:
    number = 0
    while any(f"$gw_body{number}$" in text for text in texts):
        number += 1
    return f"$gw_body{number}$"


def reference_migrations(directory: Path = REFERENCE_MIGRATIONS_DIR) -> list[Migration]:
    """The reference's steps, in order, with their breaking flags."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _REFERENCE_FILE.match(path.name)
        if match is None:
            raise MigrationError(f"unexpected migration file {path.name!r} in {directory}")
        number = int(match.group(1))
        found.append(Migration(number, path.stem, path, number in BREAKING_MIGRATIONS))
    numbers = [migration.number for migration in found]
    if numbers != list(range(1, LATEST_MIGRATION + 1)):
        raise MigrationError(f"gw's migration files are incomplete: found {numbers}")
    return found


def gw_migrations(directory: Path = GW_MIGRATIONS_DIR) -> list[Migration]:
    """gw's own migrations (``NNNNNN_name.sql``), in order; zero files is fine."""
    if not directory.is_dir():
        return []
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _GW_FILE.match(path.name)
        if match is None:
            raise MigrationError(
                f"bad gw migration file name {path.name!r}: expected NNNNNN_name.sql"
            )
        number = int(match.group(1))
        if number in found:
            raise MigrationError(f"two gw migrations are numbered {number} in {directory}")
        found[number] = Migration(number, match.group(2), path)
    return [found[number] for number in sorted(found)]


def advisory_lock_key(schema: str) -> int:
    """The advisory lock that serialises bootstrapping a schema (a signed 64-bit int)."""
    digest = hashlib.sha256(f"gw:migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def migrate(conn: asyncpg.Connection, schema: str = db.DEFAULT_SCHEMA) -> None:
    """Bring ``schema`` up to date: the reference's 20 steps, then gw's own."""
    await apply_migrations(conn, schema)


async def apply_migrations(
    conn: asyncpg.Connection,
    schema: str = db.DEFAULT_SCHEMA,
    *,
    gw_migrations_dir: Path | None = None,
) -> MigrationResult:
    """Migrate and report what was applied. Raises SchemaTooNewError (exit code 57) when
    the database has a breaking migration newer than this release knows."""
    gw_steps = gw_migrations(gw_migrations_dir or GW_MIGRATIONS_DIR)
    steps = reference_migrations()
    try:
        await _check_server_version(conn, schema)
        await _ensure_ledgers(conn, schema)
        before = await _read_status(conn, schema)
        _check_not_too_new(before, gw_steps)
        applied = await _run_steps(
            conn, schema, steps, _newer_than(before.latest), gw=False
        )
        gw_applied = await _run_steps(
            conn, schema, gw_steps, _not_in(await _applied_gw_steps(conn, schema)), gw=True
        )
        # Read again unless the schema was already complete when first read (three
        # statements a start-up of an up-to-date schema saves). A call that applied nothing
        # because a concurrent migrator got there first must not report the stale status.
        was_complete = _complete(before, steps, gw_steps)
        after = before if was_complete and not (applied or gw_applied) else (
            await _read_status(conn, schema)
        )
    except _DRIVER_ERRORS as error:
        raise MigrationError(
            f"migrating schema {schema!r} failed: {db.first_line(error)}"
        ) from error
    if applied or gw_applied:
        logger.info(
            "schema %s migrated to %s (applied %d now)", schema, after.latest, len(applied)
        )
    return MigrationResult(after, applied, gw_applied)


async def migrate_configured_database(
    settings: config.Settings, *, only_status: bool = False, what: str = "gw migrate"
) -> MigrationResult:
    """``gw migrate``: migrate the database the settings name (the embedded one when none
    is), waiting up to ``database_wait`` for it to come up; with ``only_status``, report
    where the schema stands and change nothing."""
    from graphile_worker_cli import embedded  # settings-level: the config stack on demand

    async with embedded.database_url(settings) as url:

        cache = db.statement_cache(settings.prepared_statements)

        async def attempt() -> MigrationResult:
            async with db.connection(url, **cache) as conn:
                if only_status:
                    return MigrationResult(await migration_status(conn, settings.schema_name))
                return await apply_migrations(conn, settings.schema_name)

        return await db.when_reachable(attempt, settings.database_wait, what)


async def migration_status(
    conn: asyncpg.Connection, schema: str = db.DEFAULT_SCHEMA
) -> MigrationStatus:
    """Read where ``schema`` stands without changing anything."""
    try:
        return await _read_status(conn, schema)
    except _DRIVER_ERRORS as error:
        raise MigrationError(
            f"reading the migration status of schema {schema!r} failed: {db.first_line(error)}"
        ) from error


async def check_schema(conn: asyncpg.Connection, schema: str = db.DEFAULT_SCHEMA) -> None:
    """Refuse a schema this gw cannot work with, without migrating it (for ``--no-migrate``
    and the commands that only read or change jobs)."""
    status = await migration_status(conn, schema)
    if status.latest is None:
        raise MigrationError(
            f"schema {schema!r} has no Graphile Worker migrations: check --schema, "
            "or run `gw migrate`"
        )
    if status.too_new:
        raise SchemaTooNewError(
            f"schema {schema!r} has breaking migration {status.latest_breaking}, newer than "
            f"this gw knows ({LATEST_MIGRATION}); upgrade gw"
        )
    if status.latest < LATEST_MIGRATION:
        raise MigrationError(
            f"schema {schema!r} is at migration {status.latest} of {LATEST_MIGRATION}: "
            "run `gw migrate`"
        )


async def _read_status(conn: asyncpg.Connection, schema: str) -> MigrationStatus:
    return await asyncpg_conn.run_raw(conn, _status(schema))


async def _ledger_shape(conn: asyncpg.Connection, schema: str) -> tuple[bool, bool, bool]:
    return await asyncpg_conn.run_raw(conn, _shape(schema))


def _status(schema: str) -> Operation[MigrationStatus]:
    has_ledger, has_breaking, has_gw_ledger = yield from _shape(schema)
    latest = latest_breaking = gw_latest = None
    if has_ledger:
        query = queries.LATEST_STEPS if has_breaking else queries.LATEST_STEPS_WITHOUT_BREAKING
        rows = yield Statement(query.sql(schema))
        if rows:
            latest, latest_breaking = rows[0]["latest"], rows[0]["latest_breaking"]
    if has_gw_ledger:
        rows = yield Statement(queries.LATEST_GW_STEP.sql(schema))
        gw_latest = rows[0][0] if rows else None
    return MigrationStatus(schema, latest, latest_breaking, gw_latest)


def _shape(schema: str) -> Operation[tuple[bool, bool, bool]]:
    """Whether the ledger exists, whether it has the ``breaking`` column, and whether gw's
    ledger exists."""
    quoted = db.escape_identifier(schema)
    rows = yield Statement(
        queries.LEDGER_SHAPE.sql(schema),
        (f"{quoted}.{queries.LEDGER_TABLE}", f"{quoted}.{queries.GW_LEDGER_TABLE}"),
    )
    if not rows:  # a select without from returns exactly one row
        return False, False, False
    row = rows[0]
    return bool(row[0]), bool(row[1]), bool(row[2])


async def _check_server_version(conn: asyncpg.Connection, schema: str) -> None:
    require_supported_server(int(await conn.fetchval(queries.SERVER_VERSION_NUM.sql(schema))))


def require_supported_server(version_num: int) -> None:
    """Raise UnsupportedServerError for a server older than PostgreSQL 12 (the oldest the
    schema's generated columns and the reference support); ``version_num`` is the server's
    ``server_version_num``."""
    if version_num < MINIMUM_SERVER_VERSION_NUM:
        raise UnsupportedServerError(
            f"PostgreSQL 12 or newer is required (the server reports version number "
            f"{version_num})"
        )


def _check_not_too_new(status: MigrationStatus, gw_steps: Sequence[Migration]) -> None:
    if status.too_new:
        raise SchemaTooNewError(
            f"schema {status.schema!r} is at migration {status.latest}, which includes "
            f"breaking migration {status.latest_breaking}; this gw supports up to "
            f"{LATEST_MIGRATION}. Upgrade gw, or stop running it against this database"
        )
    if status.newer_non_breaking:
        logger.warning(
            "schema %s is at migration %s, newer than this gw knows (%d); the newer "
            "migrations are not breaking, so gw continues, but check your versions",
            status.schema, status.latest, LATEST_MIGRATION,
        )
    known_gw = max((step.number for step in gw_steps), default=0)
    if status.gw_latest is not None and status.gw_latest > known_gw:
        logger.warning(
            "schema %s has gw migration %s, newer than this gw knows (%d)",
            status.schema, status.gw_latest, known_gw,
        )


async def _ensure_ledgers(conn: asyncpg.Connection, schema: str) -> None:
    """Create the schema and both ledgers when missing; add the ``breaking`` column to a
    ledger made by a release older than 0.16. Concurrent callers are serialised by an
    advisory lock; a clash with a migrator that does not take it (the Node reference)
    is retried."""
    status = await _ledger_shape(conn, schema)
    if status == (True, True, True):
        return
    for attempt in range(_BOOTSTRAP_ATTEMPTS):
        try:
            async with conn.transaction():
                lock_key = advisory_lock_key(schema)
                await conn.execute(queries.ADVISORY_XACT_LOCK.sql(schema), lock_key)
                await conn.execute(queries.CREATE_LEDGERS.sql(schema))
                await conn.execute(
                    queries.MARK_BREAKING.sql(schema), list(BREAKING_MIGRATIONS)
                )
            return
        except asyncpg.PostgresError as error:
            if error.sqlstate not in _CLASH_CODES or attempt == _BOOTSTRAP_ATTEMPTS - 1:
                raise


def _complete(
    status: MigrationStatus, steps: list[Migration], gw_steps: list[Migration]
) -> bool:
    """Whether ``status`` already shows the last reference step and the last gw step."""
    last = max((step.number for step in steps), default=None)
    gw_last = max((step.number for step in gw_steps), default=None)
    return status.latest == last and status.gw_latest == gw_last


def _newer_than(latest: int | None) -> Callable[[int], bool]:
    """The reference's steps are applied in sequence: the ones after the latest."""
    return lambda number: latest is None or number > latest


def _not_in(applied: set[int]) -> Callable[[int], bool]:
    """gw's steps are independent of one another: any not yet in the ledger, in number
    order, so a step numbered below one already applied (added by a later release or
    another branch) still runs."""
    return lambda number: number not in applied


async def _applied_gw_steps(conn: asyncpg.Connection, schema: str) -> set[int]:
    return {int(row[0]) for row in await conn.fetch(queries.GW_STEPS.sql(schema))}


async def _run_steps(
    conn: asyncpg.Connection,
    schema: str,
    steps: Sequence[Migration],
    wanted: Callable[[int], bool],
    *,
    gw: bool,
) -> list[int]:
    """Apply the ``wanted`` steps; returns the numbers this call applied."""
    applied = []
    for step in steps:
        if not wanted(step.number):
            continue
        if await _run_step(conn, schema, step, gw=gw):
            applied.append(step.number)
    return applied


async def _run_step(conn: asyncpg.Connection, schema: str, step: Migration, *, gw: bool) -> bool:
    """Apply one step in its own transaction; False when another process already did."""
    sql = step.sql(schema)
    recorded = False
    try:
        async with conn.transaction():
            if gw:
                await conn.execute(queries.RECORD_GW_STEP.sql(schema), step.number, step.name)
            else:
                await conn.execute(queries.RECORD_STEP.sql(schema), step.number, step.breaking)
            recorded = True
            await conn.execute(sql)
            if not gw:
                payload = {"migrationNumber": step.number, "breaking": step.breaking}
                await conn.execute(
                    queries.NOTIFY.sql(schema),
                    MIGRATE_CHANNEL,
                    json.dumps(payload, separators=(",", ":")),
                )
    except asyncpg.PostgresError as error:
        if not recorded and isinstance(error, asyncpg.UniqueViolationError):
            logger.debug(
                "migration %s of schema %s was applied by another process", step.name, schema
            )
            return False
        raise _step_error(schema, step, gw, error.sqlstate, db.first_line(error)) from error
    logger.debug("applied %s %s", "gw migration" if gw else "migration", step.name)
    return True


def _step_error(
    schema: str, step: Migration, gw: bool, code: str | None, line: str
) -> MigrationError:
    if code == _LOCKED_JOBS_CODE:
        return MigrationError(
            f"migration 11 of schema {schema!r} cannot run while jobs are locked by "
            "running workers (locked less than 4 hours ago): stop every worker cleanly, "
            "or wait until their locks are older than 4 hours, then migrate again"
        )
    kind = "gw migration" if gw else "migration"
    return MigrationError(f"{kind} {step.name} of schema {schema!r} failed: {line}")


# --- inside a caller's transaction (conn= of any driver) ----------------------------------------


def migrate_in_transaction(
    schema: str = db.DEFAULT_SCHEMA, *, gw_migrations_dir: Path | None = None
) -> Operation[MigrationResult]:
    """``apply_migrations`` as an operation on a caller's connection, inside the caller's
    open transaction: the migration lock is a transaction-level advisory lock (so a second
    migrator waits until the caller commits or rolls back), each step runs in a savepoint,
    and nothing is committed here. The caller must have a transaction open (checked by
    ``WorkerUtils``/``SyncWorkerUtils`` before running it)."""
    gw_steps = gw_migrations(gw_migrations_dir or GW_MIGRATIONS_DIR)
    return _migrate_in_transaction(schema, reference_migrations(), gw_steps)


def _migrate_in_transaction(
    schema: str, steps: Sequence[Migration], gw_steps: Sequence[Migration]
) -> Operation[MigrationResult]:
    (version,) = yield Statement(queries.SERVER_VERSION_NUM.sql(schema))
    require_supported_server(int(version[0]))
    yield Statement(queries.ADVISORY_XACT_LOCK.sql(schema), (advisory_lock_key(schema),))
    if (yield from _shape(schema)) != (True, True, True):
        yield from _bootstrap_in_transaction(schema)
    before = yield from _status(schema)
    _check_not_too_new(before, gw_steps)
    applied = yield from _steps_in_transaction(schema, steps, before.latest, gw=False)
    gw_applied = yield from _steps_in_transaction(schema, gw_steps, before.gw_latest, gw=True)
    after = yield from _status(schema)
    if applied or gw_applied:
        logger.info(
            "schema %s migrated to %s in the caller's transaction (applied %d)",
            schema, after.latest, len(applied),
        )
    return MigrationResult(after, applied, gw_applied)


def _bootstrap_in_transaction(schema: str) -> Operation[None]:
    """The ledgers, as ``_ensure_ledgers`` makes them; a clash with a migrator that does
    not take the lock (the Node reference) is rolled back to the savepoint and retried."""
    for attempt in range(_BOOTSTRAP_ATTEMPTS):
        yield Statement(queries.SAVEPOINT.sql(schema))
        try:
            yield Statement(queries.CREATE_LEDGERS.sql(schema), script=True)
            yield Statement(queries.MARK_BREAKING.sql(schema), (list(BREAKING_MIGRATIONS),))
        except GraphileWorkerError as error:
            yield Statement(queries.ROLLBACK_TO_SAVEPOINT.sql(schema))
            if db.sqlstate(error) not in _CLASH_CODES or attempt == _BOOTSTRAP_ATTEMPTS - 1:
                raise MigrationError(
                    f"creating the migration ledgers of schema {schema!r} failed: "
                    f"{_server_line(error)}"
                ) from error
            continue
        yield Statement(queries.RELEASE_SAVEPOINT.sql(schema))
        return


def _steps_in_transaction(
    schema: str, steps: Sequence[Migration], latest: int | None, *, gw: bool
) -> Operation[list[int]]:
    applied = []
    for step in steps:
        if latest is not None and step.number <= latest:
            continue
        if (yield from _step_in_transaction(schema, step, gw=gw)):
            applied.append(step.number)
    return applied


def _step_in_transaction(schema: str, step: Migration, *, gw: bool) -> Operation[bool]:
    """One step in a savepoint; False when another migrator recorded it first."""
    recorded = False
    yield Statement(queries.SAVEPOINT.sql(schema))
    try:
        if gw:
            yield Statement(queries.RECORD_GW_STEP.sql(schema), (step.number, step.name))
        else:
            yield Statement(queries.RECORD_STEP.sql(schema), (step.number, step.breaking))
        recorded = True
        yield Statement(step.sql(schema), script=True)
        if not gw:
            payload = {"migrationNumber": step.number, "breaking": step.breaking}
            yield Statement(
                queries.NOTIFY.sql(schema),
                (MIGRATE_CHANNEL, json.dumps(payload, separators=(",", ":"))),
            )
    except GraphileWorkerError as error:
        yield Statement(queries.ROLLBACK_TO_SAVEPOINT.sql(schema))
        code = db.sqlstate(error)
        if not recorded and code == "23505":
            logger.debug(
                "migration %s of schema %s was applied by another process", step.name, schema
            )
            return False
        raise _step_error(schema, step, gw, code, _server_line(error)) from error
    yield Statement(queries.RELEASE_SAVEPOINT.sql(schema))
    logger.debug("applied %s %s", "gw migration" if gw else "migration", step.name)
    return True


def _server_line(error: GraphileWorkerError) -> str:
    """The first line of what the server said (the driver's error under gw's)."""
    return db.first_line(db.driver_error(error.__cause__ or error))
