"""The Django integration, in a real Django project (tests/django_project) run as
``manage.py`` processes: an ``atomic()`` block that writes an order and queues its
receipt, ``using=`` another database, and ``manage.py gw`` running gw's CLI on the
project's own database settings."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from graphile_worker_cli.contrib.django import conf
from graphile_worker_cli.errors import ConfigError
from tests.conftest import create_database, drop_database, unique_name
from tests.test_run_cli import clean_env, wait_until

S = "graphile_worker"
PROJECT = Path(__file__).resolve().parent / "django_project"


@dataclass
class Done:
    code: int
    out: str
    err: str


def project_env(db_url: str, other_url: str | None = None, **graphile_worker: object) -> dict[
    str, str
]:
    env = clean_env(GW_TEST_DJANGO_DATABASE_URL=db_url)
    if other_url:
        env["GW_TEST_DJANGO_OTHER_URL"] = other_url
    if graphile_worker:
        env["GW_TEST_DJANGO_GRAPHILE_WORKER"] = json.dumps(graphile_worker)
    return env


async def manage(env: dict[str, str], *args: str, timeout: float = 60) -> Done:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", *args, cwd=PROJECT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


async def ok(env: dict[str, str], *args: str) -> str:
    done = await manage(env, *args)
    assert done.code == 0, f"manage.py {' '.join(args)}: {done.err}"
    return done.out


@pytest.fixture
async def project(db_url: str) -> dict[str, str]:
    """The project's environment on a migrated database, its tables created."""
    env = project_env(db_url)
    await ok(env, "migrate", "--verbosity", "0")
    return env


@pytest.fixture
async def other_db_url(pg_admin_url: str, migrated_template: str) -> AsyncIterator[str]:
    name = unique_name("gw_other")
    url = await create_database(pg_admin_url, name, template=migrated_template)
    try:
        yield url
    finally:
        await drop_database(pg_admin_url, name)


async def counts(conn: asyncpg.Connection) -> tuple[int, int]:
    jobs = await conn.fetchval(f"select count(*) from {S}._private_jobs")
    orders = await conn.fetchval("select count(*) from shop_order")
    return int(jobs), int(orders)


async def test_atomic_block_commits_or_rolls_back_the_job_with_the_order(
    project: dict[str, str], conn: asyncpg.Connection,
) -> None:
    out = await ok(project, "place_order", "--fail")
    assert "queued" in out and out.strip().endswith("rolled back")
    assert await counts(conn) == (0, 0)

    out = await ok(project, "place_order", "--count-round-trips")
    assert "round trips 1\n" in out and out.strip().endswith("committed")
    assert await counts(conn) == (1, 1)
    order_id = await conn.fetchval("select id from shop_order")
    row = await conn.fetchrow(
        f"select t.identifier, q.queue_name, j.key, j.max_attempts, j.payload::text"
        f" from {S}._private_jobs j join {S}._private_tasks t on t.id = j.task_id"
        f" join {S}._private_job_queues q on q.id = j.job_queue_id"
    )
    assert row is not None
    assert tuple(row) == (
        "send_receipt", "receipts", f"receipt:{order_id}", 3, f'{{"order_id":{order_id}}}'
    )


async def test_using_adds_the_job_on_that_alias_database(
    db_url: str, other_db_url: str, conn: asyncpg.Connection,
) -> None:
    env = project_env(db_url, other_db_url)
    await ok(env, "migrate", "--verbosity", "0", "--database", "other")
    await ok(env, "place_order", "--using", "other")
    other = await asyncpg.connect(other_db_url)
    try:
        assert await counts(other) == (1, 1)
    finally:
        await other.close()
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0


async def test_manage_py_gw_runs_gw_on_the_project_database(
    project: dict[str, str], conn: asyncpg.Connection,
) -> None:
    await ok(project, "place_order")
    order_id = await conn.fetchval("select id from shop_order")
    # add-job through the CLI, on the same database, with no URL given anywhere
    added = await ok(project, "gw", "add-job", "send_receipt", json.dumps({"order_id": -1}),
                     "--json")
    assert json.loads(added)["task_identifier"] == "send_receipt"
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 2
    # run --once: the project's task (GRAPHILE_WORKER tasks_modules) updates the order
    await ok(project, "gw", "run", "--once")
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0
    assert await conn.fetchval(
        "select receipt_sent_at is not null from shop_order where id = $1", order_id
    )


async def test_running_worker_starts_the_job_within_1s_of_commit_and_not_before(
    project: dict[str, str], conn: asyncpg.Connection, tmp_path: Path,
) -> None:
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", "gw", "run", "--poll-interval", "1h", "-v", cwd=PROJECT,
        env=project, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    hold = tmp_path / "commit-now"
    lines: list[str] = []

    async def read() -> None:
        assert worker.stderr is not None
        async for raw in worker.stderr:
            lines.append(raw.decode(errors="replace"))

    async def listening() -> bool:
        return any("listening for new jobs" in line for line in lines)

    reader = asyncio.create_task(read())
    placing: asyncio.subprocess.Process | None = None
    try:
        await wait_until(listening, 30, lambda: "".join(lines))
        placing = await asyncio.create_subprocess_exec(
            sys.executable, "manage.py", "place_order", "--hold", str(hold), cwd=PROJECT,
            env=project, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert placing.stdout is not None
        queued = await asyncio.wait_for(placing.stdout.readline(), 30)
        assert queued.startswith(b"queued"), queued
        order_id = int(queued.split()[2])
        # Not before: the worker has had time to act on anything it could see.
        await asyncio.sleep(1.0)
        assert await conn.fetchval("select receipt_sent_at from shop_order") is None
        assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0
        before_commit: datetime = await conn.fetchval("select clock_timestamp()")
        hold.touch()
        out, err = await asyncio.wait_for(placing.communicate(), 30)
        assert placing.returncode == 0 and out.strip() == b"committed", err

        async def receipt_sent() -> bool:
            return bool(await conn.fetchval(
                "select receipt_sent_at is not null from shop_order where id = $1", order_id
            ))

        await wait_until(receipt_sent, 10, lambda: "".join(lines))
        sent_at: datetime = await conn.fetchval("select receipt_sent_at from shop_order")
        assert before_commit < sent_at < before_commit + timedelta(seconds=1)
    finally:
        for process in (worker, placing):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        await reader


async def test_a_bad_graphile_worker_setting_is_one_line_and_exit_2(db_url: str) -> None:
    done = await manage(project_env(db_url, concurency=3), "gw", "run", "--once")
    assert done.code == 2
    assert done.err.strip().splitlines() == [
        'Error: settings.GRAPHILE_WORKER: unknown key "concurency" (did you mean '
        '"concurrency"? known keys: ' + done.err.split("known keys: ", 1)[1].strip()
    ]
    done = await manage(project_env(db_url, database="nope"), "gw", "run", "--once")
    assert done.code == 2
    assert "expected an alias in DATABASES (default), got 'nope'" in done.err
    assert "Traceback" not in done.err


def test_database_url_from_django_settings() -> None:
    engine = "django.db.backends.postgresql"
    assert conf.database_url({
        "ENGINE": engine, "NAME": "shop", "USER": "app", "PASSWORD": "p@ss:w/rd",
        "HOST": "db.internal", "PORT": 6432,
        "OPTIONS": {"sslmode": "require", "server_side_binding": True},
    }) == "postgres://app:p%40ss%3Aw%2Frd@db.internal:6432/shop?sslmode=require"
    assert conf.database_url({
        "ENGINE": "django.contrib.gis.db.backends.postgis", "NAME": "geo", "USER": "",
        "HOST": "/var/run/postgresql",
    }) == "postgres:///geo?host=%2Fvar%2Frun%2Fpostgresql"
    with pytest.raises(ConfigError, match=r"DATABASES\['legacy'\] uses "
                       r"django.db.backends.sqlite3: gw needs PostgreSQL"):
        conf.database_url({"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}, "legacy")
