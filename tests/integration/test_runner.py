"""The library runner inside a running event loop (``async with Runner(...)``), on a real
PostgreSQL: it starts a worker, runs queued jobs, stops on request handing back what runs,
and leaves process signals to the application."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import Runner
from graphile_worker_cli.errors import MigrationError, SchemaTooNewError
from tests.helpers.database import listening
from tests.helpers.waiting import resolved, wait_until

S = "graphile_worker"

pytestmark = pytest.mark.usefixtures("clean_environment")

ran: list[Any] = []
blocker = asyncio.Event()
started = asyncio.Event()


async def record(payload: Any) -> None:
    ran.append(payload)


async def hold(payload: Any) -> None:
    started.set()
    await blocker.wait()


@pytest.fixture(autouse=True)
def fresh_state() -> None:
    """Events of their own for each test (an asyncio.Event binds to the loop that uses it)."""
    global blocker, started
    ran.clear()
    blocker, started = asyncio.Event(), asyncio.Event()


async def _jobs(conn: asyncpg.Connection) -> list[Any]:
    return list(await conn.fetch(
        f"select id, attempts, locked_at from {S}._private_jobs order by id"
    ))


async def test_async_with_runs_queued_jobs_and_stops(
    db_url: str, conn: asyncpg.Connection
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    async with Runner(database_url=db_url, task_handlers=[record], poll_interval="0.2s") as runner:
        assert signal.getsignal(signal.SIGTERM) == before  # no handler of its own
        await conn.execute(f"select {S}.add_job('record', '{{\"n\": 1}}')")
        await wait_until(lambda: resolved(ran == [{"n": 1}]))
        await wait_until(lambda: _no_jobs(conn))
    assert await runner.wait() == 0
    assert signal.getsignal(signal.SIGTERM) == before


async def _no_jobs(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0)


async def test_stop_hands_back_a_job_still_running_after_the_grace_period(
    db_url: str, conn: asyncpg.Connection
) -> None:
    runner = Runner(database_url=db_url, task_handlers=[hold], shutdown_grace_period="0.2s")
    await runner.start()
    await conn.execute(f"select {S}.add_job('hold', '{{}}')")
    await asyncio.wait_for(started.wait(), 20)
    assert await runner.stop() == 0
    [job] = await _jobs(conn)
    assert job["locked_at"] is None  # handed back: another worker may take it at once
    assert job["attempts"] == 0  # the interrupted attempt is not used up


async def test_a_job_running_at_stop_finishes_within_the_grace_period(
    db_url: str, conn: asyncpg.Connection
) -> None:
    async with Runner(database_url=db_url, task_handlers=[hold]) as runner:
        await conn.execute(f"select {S}.add_job('hold', '{{}}')")
        await asyncio.wait_for(started.wait(), 20)
        stopping = asyncio.ensure_future(runner.stop())
        await asyncio.sleep(0)
        blocker.set()
        assert await stopping == 0
    assert await _jobs(conn) == []


async def test_once_runs_the_runnable_jobs_then_ends(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await conn.execute(
        f"select {S}.add_job('record', json_build_object('n', n)) from generate_series(1, 3) n"
    )
    async with Runner(database_url=db_url, task_handlers=[record], once=True) as runner:
        assert await runner.wait() == 0
    assert sorted(item["n"] for item in ran) == [1, 2, 3]
    assert await _jobs(conn) == []


async def test_the_tasks_directory_and_crontab_of_the_settings_are_used(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "from_dir.py").write_text("async def task(payload, ctx):\n    pass\n")
    (tmp_path / "crontab").write_text("0 4 * * * from_dir\n")
    await conn.execute(f"select {S}.add_job('from_dir', '{{}}')")
    async with Runner(database_url=db_url, once=True) as runner:
        await runner.wait()
    assert await _jobs(conn) == []
    known = await conn.fetchval(f"select count(*) from {S}._private_known_crontabs")
    assert known == 0  # --once runs no scheduler, as gw run --once
    async with Runner(database_url=db_url) as runner:
        await wait_until(lambda: _crontab_known(conn))


async def _crontab_known(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(f"select count(*) from {S}._private_known_crontabs") == 1)


async def test_start_up_errors_raise_from_start(empty_db_url: str) -> None:
    runner = Runner(database_url=empty_db_url, task_handlers=[record], migrate=False)
    with pytest.raises(MigrationError, match="has no Graphile Worker migrations"):
        await runner.start()


async def test_a_breaking_migration_surfaces_from_wait(
    db_url: str, conn: asyncpg.Connection
) -> None:
    with pytest.raises(SchemaTooNewError, match="breaking migration 21"):
        async with Runner(
            database_url=db_url, task_handlers=[record], poll_interval="1h"
        ) as runner:
            await wait_until(lambda: listening(conn))
            await conn.execute(
                "select pg_notify('worker:migrate', $1)",
                '{"migrationNumber": 21, "breaking": true}',
            )
            await asyncio.wait_for(runner.wait(), 20)


async def test_leaving_the_block_after_request_stop_keeps_the_grace_period(
    db_url: str, conn: asyncpg.Connection
) -> None:
    async with Runner(database_url=db_url, task_handlers=[hold]) as runner:
        await conn.execute(f"select {S}.add_job('hold', '{{}}')")
        await asyncio.wait_for(started.wait(), 20)
        runner.request_stop()
        asyncio.get_running_loop().call_later(0.2, blocker.set)
    assert await _jobs(conn) == []  # finished, not cut short and handed back


async def test_cancelling_start_stops_the_start_up_it_began(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = Runner(
        database_url="postgresql://root@127.0.0.1:1/nowhere", database_wait="1m",
        task_handlers=[record],
    )
    starting = asyncio.ensure_future(runner.start())
    await wait_until(lambda: resolved("database not reachable yet" in caplog.text), 10)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert await asyncio.wait_for(runner.wait(), 10) == 0
