"""The Django integration, in a real Django project (tests/django_project) run as
``manage.py`` processes: an ``atomic()`` block that writes an order and queues its
receipt, ``using=`` another database, and ``manage.py gw`` running gw's CLI on the
project's own database settings."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.database import create_database, drop_database, unique_name
from tests.helpers.django_project import PROJECT, manage, ok, project_env
from tests.helpers.waiting import wait_until

S = "graphile_worker"


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


# --- connections between jobs, as between requests -------------------------------------------


NOTE_TASKS = ["shop.tasks", "shop.connection_tasks"]


async def _notes(conn: asyncpg.Connection, kind: str) -> list[int]:
    """The backend pid each ``kind`` job saw, in job order."""
    rows = await conn.fetch("select note from shop_order where note like $1 order by id",
                            f"{kind} %")
    return [int(row["note"].split()[2]) for row in rows]


async def _run_note_jobs(env: dict[str, str], conn: asyncpg.Connection) -> None:
    for n in range(3):
        for task in ("note_connection", "note_connection_async"):
            await conn.execute(
                f"select {S}.add_job($1, json_build_object('n', $2::int))", task, n
            )
    await ok(env, "gw", "run", "--once")
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0


async def test_each_job_closes_obsolete_connections_as_a_request_does(
    db_url: str, conn: asyncpg.Connection
) -> None:
    # CONN_MAX_AGE 0 (Django's default): a request's connection is closed when it ends; so
    # is a job's, in the thread of a def task and in asgiref's for an async task's ORM.
    env = project_env(db_url, concurrency=1, tasks_modules=NOTE_TASKS)
    await ok(env, "migrate", "--verbosity", "0")
    await _run_note_jobs(env, conn)
    sync_pids, async_pids = await _notes(conn, "sync"), await _notes(conn, "async")
    assert len(sync_pids) == len(set(sync_pids)) == 3
    assert len(async_pids) == len(set(async_pids)) == 3


async def test_persistent_connections_are_kept_between_jobs(
    db_url: str, conn: asyncpg.Connection
) -> None:
    # CONN_MAX_AGE None: persistent, as between requests; the async tasks' ORM runs in one
    # thread (asgiref's), so every job there reuses one connection.
    env = project_env(
        db_url, settings={"CONN_MAX_AGE": None}, concurrency=1, tasks_modules=NOTE_TASKS
    )
    await ok(env, "migrate", "--verbosity", "0")
    await _run_note_jobs(env, conn)
    async_pids = await _notes(conn, "async")
    assert len(async_pids) == 3 and len(set(async_pids)) == 1


# --- run_at and Django's time zone settings ----------------------------------------------------


async def test_naive_run_at_without_use_tz_is_read_in_time_zone(
    db_url: str, conn: asyncpg.Connection
) -> None:
    env = project_env(db_url, settings={"USE_TZ": False, "TIME_ZONE": "Asia/Kolkata"})
    out = await ok(env, "schedule_receipt", "2031-05-17T09:30:00")
    # The job comes back as Django's connection reads datetimes: naive, in TIME_ZONE.
    assert out.strip() == "2031-05-17T09:30:00 True"
    stored = await conn.fetch(f"select run_at from {S}._private_jobs order by id")
    assert [row["run_at"] for row in stored] == [
        datetime.fromisoformat("2031-05-17T04:00:00+00:00")
    ] * 2


async def test_naive_run_at_with_use_tz_is_refused_in_one_line(
    db_url: str, conn: asyncpg.Connection
) -> None:
    env = project_env(db_url, settings={"USE_TZ": True})
    done = await manage(env, "schedule_receipt", "2031-05-17T09:30:00")
    assert done.code == 1
    assert done.err.strip() == (
        "CommandError: invalid run_at 2031-05-17T09:30:00: a naive datetime while "
        "USE_TZ = True; expected an aware one (e.g. django.utils.timezone.now() + "
        "timedelta(...))"
    )
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0
    out = await ok(env, "schedule_receipt", "2031-05-17T09:30:00+02:00")
    assert out.strip() == "2031-05-17T07:30:00+00:00 True"


async def test_processes_children_set_django_up_and_run_orm_tasks(
    project: dict[str, str], conn: asyncpg.Connection
) -> None:
    # Each child of --processes is `manage.py gw` again, so it loads the project's tasks
    # (which import models) after Django's setup, with the plugin recycling connections.
    for _ in range(4):
        await ok(project, "place_order")
    done = await manage(project, "gw", "run", "--processes", "2", "--once")
    assert done.code == 0, done.err
    assert done.err.count("exited with code 0") == 2
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0
    assert await conn.fetchval(
        "select count(*) from shop_order where receipt_sent_at is not null"
    ) == 4
