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
