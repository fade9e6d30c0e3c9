"""gw's schema against the Node reference's: same catalog fresh, after upgrading databases
left by older reference releases, with an odd schema name; each side accepts the other's
schema; and the SQL functions behave the same on both."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import migrate
from graphile_worker_cli.errors import MigrationError
from tests.helpers.catalog import diff_catalogs, dump_catalog
from tests.helpers.database import create_database, drop_database, unique_name, with_database
from tests.helpers.migrations import ODD_SCHEMA
from tests.helpers.paths import GW, REPO_ROOT
from tests.helpers.reference import reference_command, reference_env, run_reference

pytestmark = pytest.mark.interop

SCHEMA = "graphile_worker"
FUTURE = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def reference_ok(url: str, *args: str, **kwargs: Any) -> None:
    result = run_reference(url, *args, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr


def gw_migrate(url: str, *args: str) -> None:
    result = subprocess.run(
        [GW, "migrate", "-c", url, *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


async def catalog_of(url: str, schema: str = SCHEMA) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        return await dump_catalog(conn, schema)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def reference_template(pg_admin_url: str) -> Iterator[str]:
    """A database the 0.18.0 reference migrated (``--schema-only``), built once."""
    name = unique_name("gw_reftpl")
    url = asyncio.run(create_database(pg_admin_url, name))
    try:
        reference_ok(url, "--schema-only")
        yield name
    finally:
        asyncio.run(drop_database(pg_admin_url, name))


@pytest.fixture(scope="module")
def reference_catalog(pg_admin_url: str, reference_template: str) -> dict[str, Any]:
    return asyncio.run(catalog_of(with_database(pg_admin_url, reference_template)))


@pytest.fixture
async def reference_db_url(pg_admin_url: str, reference_template: str) -> AsyncIterator[str]:
    """A fresh copy of the reference-migrated database."""
    name = unique_name("gw_ref")
    url = await create_database(pg_admin_url, name, template=reference_template)
    try:
        yield url
    finally:
        await drop_database(pg_admin_url, name)


@pytest.fixture
async def make_db(pg_admin_url: str) -> AsyncIterator[Any]:
    """Factory for extra empty databases, all dropped at the end of the test."""
    names: list[str] = []

    async def make() -> str:
        name = unique_name("gw_icat")
        names.append(name)
        return await create_database(pg_admin_url, name)

    try:
        yield make
    finally:
        for name in names:
            await drop_database(pg_admin_url, name)


# --- same catalog -------------------------------------------------------------------------


async def test_fresh_gw_schema_equals_the_reference(
    empty_db_url: str, reference_catalog: dict[str, Any]
) -> None:
    gw_migrate(empty_db_url)
    gw_catalog = await catalog_of(empty_db_url)
    assert diff_catalogs(reference_catalog, gw_catalog) == []
    assert reference_catalog["ledger"] == [
        (n, n in migrate.BREAKING_MIGRATIONS) for n in range(1, 21)
    ]


async def test_odd_schema_name_equals_the_reference(
    make_db: Any, reference_catalog: dict[str, Any]
) -> None:
    # The reference takes the schema from GRAPHILE_WORKER_SCHEMA and quotes it correctly.
    reference_url, gw_url = await make_db(), await make_db()
    reference_ok(reference_url, "--schema-only", schema=ODD_SCHEMA)
    gw_migrate(gw_url, "--schema", ODD_SCHEMA)
    reference_odd = await catalog_of(reference_url, ODD_SCHEMA)
    assert diff_catalogs(reference_odd, await catalog_of(gw_url, ODD_SCHEMA)) == []
    assert diff_catalogs(reference_catalog, reference_odd) == []


async def test_gw_and_reference_migrating_at_once(
    empty_db_url: str, reference_catalog: dict[str, Any]
) -> None:
    """Two Node and two gw migrators race on an empty database: schema and ledger-table
    creation clash, then the ledger rows decide who applies each step."""
    node = [reference_command("-c", empty_db_url, "--schema-only")] * 2
    ours = [[GW, "migrate", "-c", empty_db_url]] * 2
    processes = [
        await asyncio.create_subprocess_exec(
            *command, env=reference_env(), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for command in (node[0], ours[0], node[1], ours[1])
    ]
    outputs = [await asyncio.wait_for(p.communicate(), 60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    assert diff_catalogs(reference_catalog, await catalog_of(empty_db_url)) == []


# --- every intermediate step -----------------------------------------------------------------

REFERENCE_SQL = REPO_ROOT / "tests/interop/node_modules/graphile-worker/sql"


def reference_step_sql(number: int) -> str:
    """The reference's own text of step ``number`` (run, never copied), for the default
    schema."""
    text = (REFERENCE_SQL / f"{number:06d}.sql").read_text()
    return text.replace(":GRAPHILE_WORKER_SCHEMA", SCHEMA)


def gw_step_sql(number: int) -> str:
    return migrate.reference_migrations()[number - 1].sql(SCHEMA)


LEDGER = f"""
create schema {SCHEMA};
create table {SCHEMA}.migrations (
  id int primary key, ts timestamptz not null default now(), breaking boolean not null default false
)
"""


async def apply_steps(conn: asyncpg.Connection, numbers: range, ours: bool) -> None:
    for number in numbers:
        async with conn.transaction():
            await conn.execute(
                f"insert into {SCHEMA}.migrations (id, breaking) values ($1, $2)",
                number, number in migrate.BREAKING_MIGRATIONS,
            )
            await conn.execute(gw_step_sql(number) if ours else reference_step_sql(number))


async def test_every_intermediate_step_leaves_the_reference_catalog(make_db: Any) -> None:
    """After each step n, gw's schema equals what the reference's step n leaves, so a
    database stopped anywhere by either side continues correctly with the other."""
    ours_url, theirs_url = await make_db(), await make_db()
    ours, theirs = await asyncpg.connect(ours_url), await asyncpg.connect(theirs_url)
    try:
        for conn in (ours, theirs):
            await conn.execute(LEDGER)
        for number in range(1, 21):
            await apply_steps(ours, range(number, number + 1), ours=True)
            await apply_steps(theirs, range(number, number + 1), ours=False)
            difference = diff_catalogs(
                await dump_catalog(theirs, SCHEMA), await dump_catalog(ours, SCHEMA)
            )
            assert difference == [], f"after step {number}: {difference}"
    finally:
        await ours.close()
        await theirs.close()


@pytest.mark.parametrize("switch_at", [2, 7, 11, 16])
async def test_steps_mix_in_either_order(
    make_db: Any, reference_catalog: dict[str, Any], switch_at: int
) -> None:
    """gw's steps up to n then the reference's, and the other way round."""
    for gw_first in (True, False):
        url = await make_db()
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(LEDGER)
            await apply_steps(conn, range(1, switch_at + 1), ours=gw_first)
            await apply_steps(conn, range(switch_at + 1, 21), ours=not gw_first)
            catalog = await dump_catalog(conn, SCHEMA)
        finally:
            await conn.close()
        assert diff_catalogs(reference_catalog, catalog) == [], (gw_first, switch_at)


# --- upgrades from databases older releases left ----------------------------------------------


async def queue_jobs_with_old_sql(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        add = "select graphile_worker.add_job($1, $2::json"
        await conn.execute(add + ", job_key => 'the-key')", "keyed", '{"k": 1}')
        await conn.execute(add + ", queue_name => 'serial')", "queued", '{"q": [1, 2]}')
        await conn.execute(add + ", run_at => $3)", "future", '{"f": "x"}', FUTURE)
        await conn.execute(
            add + ", priority => 5, max_attempts => 3, flags => array['slow'])", "flagged", "[1]"
        )
    finally:
        await conn.close()


async def surviving_jobs(url: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """
            select v.task_identifier, v.queue_name, v.key, p.payload::text as payload,
                   case when v.run_at > now() + interval '1 day' then v.run_at end as run_at,
                   v.priority, v.attempts, v.max_attempts, v.flags::text, v.revision
            from graphile_worker.jobs as v
            join graphile_worker._private_jobs as p on p.id = v.id
            order by v.task_identifier
            """
        )
        return [tuple(row.values()) for row in rows]
    finally:
        await conn.close()


EXPECTED_JOBS = [
    ("flagged", None, None, "[1]", None, 5, 0, 3, '{"slow": true}', 0),
    ("future", None, None, '{"f": "x"}', FUTURE, 0, 0, 25, None, 0),
    ("keyed", None, "the-key", '{"k": 1}', None, 0, 0, 25, None, 0),
    ("queued", "serial", None, '{"q": [1, 2]}', None, 0, 0, 25, None, 0),
]


@pytest.mark.parametrize("release", ["0.13.0", "0.16.6"])
async def test_upgrade_from_an_older_release(
    make_db: Any, reference_catalog: dict[str, Any], release: str
) -> None:
    by_gw, by_reference = await make_db(), await make_db()
    for url in (by_gw, by_reference):
        reference_ok(url, "--schema-only", release=release)
        await queue_jobs_with_old_sql(url)
    old_ledger = await catalog_of(by_gw)
    assert old_ledger["ledger"][-1][0] == (10 if release == "0.13.0" else 18)

    gw_migrate(by_gw)
    reference_ok(by_reference, "--schema-only")

    assert diff_catalogs(reference_catalog, await catalog_of(by_gw)) == []
    assert diff_catalogs(reference_catalog, await catalog_of(by_reference)) == []
    assert await surviving_jobs(by_gw) == EXPECTED_JOBS
    assert await surviving_jobs(by_reference) == EXPECTED_JOBS


async def test_migration_11_waits_for_locked_jobs(make_db: Any) -> None:
    url = await make_db()
    reference_ok(url, "--schema-only", release="0.13.0")
    await queue_jobs_with_old_sql(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "update graphile_worker.jobs set locked_at = now() - interval '3 hours', "
            "locked_by = 'node-worker' where task_identifier = 'keyed'"
        )
        with pytest.raises(MigrationError, match="cannot run while jobs are locked"):
            await migrate.migrate(conn, SCHEMA)
        assert await conn.fetchval("select max(id) from graphile_worker.migrations") == 10
        assert await conn.fetchval("select count(*) from graphile_worker.jobs") == 4

        # a lock older than four hours belongs to a dead worker: the step goes ahead
        await conn.execute(
            "update graphile_worker.jobs set locked_at = now() - interval '5 hours' "
            "where task_identifier = 'keyed'"
        )
        result = await migrate.apply_migrations(conn, SCHEMA)
        assert result.applied == list(range(11, 21))
    finally:
        await conn.close()
    assert [job[0] for job in await surviving_jobs(url)] == ["flagged", "future", "keyed", "queued"]


def test_cli_reports_locked_jobs_in_one_line(make_db: Any) -> None:
    async def prepare() -> str:
        url: str = await make_db()
        reference_ok(url, "--schema-only", release="0.13.0")
        await queue_jobs_with_old_sql(url)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("update graphile_worker.jobs set locked_at = now(), locked_by = 'w'")
        finally:
            await conn.close()
        return url

    url = asyncio.run(prepare())
    result = subprocess.run([GW, "migrate", "-c", url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot run while jobs are locked" in lines[0], result.stderr


# --- each side accepts the other's schema ------------------------------------------------------


async def ledger_rows(url: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "select id, ts, breaking from graphile_worker.migrations order by id"
        )
        return [tuple(row.values()) for row in rows]
    finally:
        await conn.close()


async def test_reference_accepts_a_gw_schema(db_url: str, tmp_path: Path) -> None:
    before = await ledger_rows(db_url)
    reference_ok(db_url, "--schema-only")
    assert await ledger_rows(db_url) == before

    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "hello.js").write_text(
        "module.exports = async (payload, helpers) => {\n"
        "  await helpers.query('insert into seen (n) values ($1)', [payload.n]);\n"
        "};\n"
    )
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("create table seen (n int)")
        await conn.execute("select graphile_worker.add_job('hello', '{\"n\": 7}'::json)")
        reference_ok(db_url, "--once", cwd=tmp_path)
        assert await conn.fetchval("select array_agg(n) from seen") == [7]
        assert await conn.fetchval("select count(*) from graphile_worker.jobs") == 0
    finally:
        await conn.close()
    assert await ledger_rows(db_url) == before


async def test_gw_accepts_a_reference_schema(
    reference_db_url: str, reference_catalog: dict[str, Any]
) -> None:
    before = await ledger_rows(reference_db_url)
    conn = await asyncpg.connect(reference_db_url)
    try:
        result = await migrate.apply_migrations(conn, SCHEMA)
    finally:
        await conn.close()
    assert result.applied == []
    assert result.gw_applied == [step.number for step in migrate.gw_migrations()]
    assert await ledger_rows(reference_db_url) == before
    assert diff_catalogs(reference_catalog, await catalog_of(reference_db_url)) == []


# --- the functions behave the same ---------------------------------------------------------------

_JOB_COLUMNS = (
    "id, job_queue_id, task_id, payload::text, priority, "
    "case when run_at > now() + interval '1 day' then run_at end as run_at, "
    "attempts, max_attempts, last_error, key, locked_by, revision, flags::text, is_available"
)
_NOTIFY_FORMAT = re.compile(r'^\{"r":[0-9.e-]+,"count":(-?\d+)\}$')


class Recorder:
    """Runs SQL and writes down everything observable, errors included."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.seen: list[Any] = []

    async def jobs(self, sql: str, *args: Any) -> None:
        try:
            async with self.conn.transaction():
                rows = await self.conn.fetch(
                    f"select {_JOB_COLUMNS} from ({sql}) as result", *args
                )
        except asyncpg.PostgresError as error:
            self.seen.append(("error", sql, error.sqlstate, str(error).splitlines()[0]))
            return
        self.seen.append((sql, [tuple(row.values()) for row in rows]))

    async def run(self, sql: str, *args: Any) -> None:
        await self.conn.execute(sql, *args)

    async def table(self) -> None:
        rows = await self.conn.fetch(
            f"select {_JOB_COLUMNS} from graphile_worker._private_jobs order by id"
        )
        self.seen.append(("table", [tuple(row.values()) for row in rows]))
        for name in ("_private_tasks", "_private_job_queues"):
            lookup = await self.conn.fetch(f"select * from graphile_worker.{name} order by id")
            self.seen.append((name, [tuple(row.values()) for row in lookup]))


DAY = dt.timedelta(days=1)
LOCK_RUNNING = (
    "update graphile_worker._private_jobs set locked_at = now() - interval '1 minute', "
    "locked_by = 'w1' where key in ('k1', 'k4')"
)
LOCK_STALE = (
    "update graphile_worker._private_jobs set locked_at = now() - interval '5 hours', "
    "locked_by = 'w2' where key = 'k-replace'"
)
SPECS = "array[('f', '[1]', 'q3', $1, 2, 'k6', 1, array['z']), ('g', null, null, null, null, " \
    "null, null, null)]::graphile_worker.job_spec[]"

# (kind, SQL, arguments): "jobs" records the rows (or the error), "run" only executes.
SCENARIO: list[tuple[str, str, tuple[Any, ...]]] = [
    ("jobs", "add_job('a', '{\"x\": 1}', 'q1', $1, 5, 'k1', 3, array['f1', 'f2'])", (FUTURE,)),
    ("jobs", "add_job('a', '[1]', job_key => 'k2')", ()),
    ("jobs", "add_job('b', '[2, 3]', job_key => 'k2')", ()),
    ("jobs", "add_job('b', '{}', job_key => 'k2', queue_name => 'q2')", ()),
    *[
        ("jobs", f"add_job('c', run_at => $1, job_key => 'k-{mode}', job_key_mode => '{mode}')",
         (when,))
        for mode in ("preserve_run_at", "replace")
        for when in (FUTURE, FUTURE + 3 * DAY)
    ],
    ("jobs", "add_job('d', '{\"v\": 1}', job_key => 'k4', job_key_mode => 'unsafe_dedupe')", ()),
    ("jobs", "add_job('d', '{\"v\": 2}', job_key => 'k4', job_key_mode => 'unsafe_dedupe')", ()),
    ("jobs", "add_job('e', job_key => 'k5', job_key_mode => 'bogus')", ()),
    ("jobs", "add_job('e', job_key_mode => 'bogus')", ()),
    ("jobs", "add_job('e', max_attempts => 0)", ()),
    ("jobs", "add_job(repeat('t', 129))", ()),
    ("run", LOCK_RUNNING, ()),
    ("run", LOCK_STALE, ()),
    ("jobs", "add_job('a', '{\"x\": 2}', job_key => 'k1')", ()),
    ("jobs", "add_job('d', '{\"v\": 3}', job_key => 'k4', job_key_mode => 'unsafe_dedupe')", ()),
    ("jobs", "complete_jobs(array(select id from graphile_worker._private_jobs "
     "where locked_by is not null))", ()),
    ("jobs", "permanently_fail_jobs(array[1, 2, 3, 4], 'nope')", ()),
    ("jobs", "permanently_fail_jobs(array[5])", ()),
    ("jobs", "reschedule_jobs(array[1, 2, 5, 6], run_at => $1, priority => -2, attempts => 1, "
     "max_attempts => 9)", (FUTURE,)),
    ("jobs", "remove_job('k4')", ()),
    ("jobs", "remove_job('k2')", ()),
    ("jobs", "remove_job(null)", ()),
    ("jobs", "remove_job('no such key')", ()),
    ("run", "select graphile_worker.force_unlock_workers(array['w1'])", ()),
    ("jobs", f"add_jobs({SPECS})", (FUTURE,)),
    ("jobs", "add_jobs(array[('f', '[2]', 'q3', $1, 2, 'k6', 1, null)]"
     "::graphile_worker.job_spec[], job_key_preserve_run_at => true)", (FUTURE + DAY,)),
    ("jobs", "add_jobs(array[]::graphile_worker.job_spec[])", ()),
]


async def scenario(url: str) -> list[Any]:
    conn = await asyncpg.connect(url)
    listener = await asyncpg.connect(url)
    notes: list[str] = []
    await listener.add_listener("jobs:insert", lambda _c, _p, _ch, payload: notes.append(payload))
    rec = Recorder(conn)
    try:
        for kind, sql, args in SCENARIO:
            if kind == "run":
                await rec.run(sql, *args)
            else:
                await rec.jobs(f"select * from graphile_worker.{sql}", *args)
        await rec.table()
        view = await conn.fetch(
            "select id, queue_name, task_identifier, priority, attempts, max_attempts, "
            "last_error, key, locked_by, revision, flags::text from graphile_worker.jobs "
            "order by id"
        )
        rec.seen.append(("view", [tuple(row.values()) for row in view]))
        # a round trip on the listener delivers what the committed transactions sent
        await listener.execute("select 1")
    finally:
        await listener.close()
        await conn.close()
    counts: list[Any] = []
    for note in notes:
        match = _NOTIFY_FORMAT.match(note)
        counts.append(int(match.group(1)) if match else note)
    rec.seen.append(("notifications", counts))
    return rec.seen


async def test_functions_behave_like_the_reference(db_url: str, reference_db_url: str) -> None:
    ours = await scenario(db_url)
    theirs = await scenario(reference_db_url)
    assert len(ours) == len(theirs)
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine == reference
    notifications = dict(item for item in ours if item[0] == "notifications")["notifications"]
    # every payload is {"r":<random>,"count":<n>}, except the empty add_jobs call's (no count)
    assert all(isinstance(n, int) for n in notifications[:-1]) and notifications[-1] == ""
    assert -1 in notifications and 2 in notifications
    assert any(item[0] == "error" and item[2] == "GWBKM" for item in ours)
    assert json.dumps(ours, default=str)  # everything observed is plain data
