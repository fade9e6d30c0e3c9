"""Batched settling against a real PostgreSQL: several outcomes in one statement, a flush at
shutdown, and database errors during a settle retried and applied exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import context
from graphile_worker_cli.worker import store
from tests.helpers.waiting import resolved, wait_until
from tests.helpers.worker import S, add_job, job_count, make_options


def record_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[list[int]]:
    """Wrap a settling statement; return the job ids of each call, in order."""
    calls: list[list[int]] = []
    real = getattr(store, name)

    async def wrapped(conn: asyncpg.Connection, schema: str, worker_id: str,
                      items: list[Any], **options: Any) -> None:
        calls.append([item if isinstance(item, int) else item.job_id for item in items])
        await real(conn, schema, worker_id, items, **options)

    monkeypatch.setattr(store, name, wrapped)
    return calls


async def test_outcomes_finishing_together_land_in_one_statement_each(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asyncio.Event()
    waiting: list[int] = []

    async def gated(payload: Any, ctx: context.WorkerContext) -> None:
        waiting.append(ctx.job_id)
        await gate.wait()
        if payload["fail"]:
            raise RuntimeError("nope")

    ok = [await add_job(conn, "gated", {"fail": False}) for _ in range(6)]
    bad = [await add_job(conn, "gated", {"fail": True}) for _ in range(4)]
    completes = record_calls(monkeypatch, "complete_jobs")
    fails = record_calls(monkeypatch, "fail_jobs")
    worker = await make_options(db_url, concurrency=10).define_job(gated, "gated").init()
    run = asyncio.create_task(worker.run_once())
    await wait_until(lambda: resolved(len(waiting) == 10))
    gate.set()
    await asyncio.wait_for(run, 30)
    assert [sorted(c) for c in completes] == [sorted(ok)]
    assert [sorted(f) for f in fails] == [sorted(bad)]
    rows = await conn.fetch(f"select id, last_error, locked_by from {S}._private_jobs")
    assert sorted(r["id"] for r in rows) == sorted(bad)
    assert all("nope" in r["last_error"] and r["locked_by"] is None for r in rows)


async def test_completions_are_flushed_on_shutdown_despite_a_long_delay(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    done: list[int] = []

    async def quick(payload: Any, ctx: context.WorkerContext) -> None:
        done.append(ctx.job_id)

    for _ in range(5):
        await add_job(conn, "quick", {})
    completes = record_calls(monkeypatch, "complete_jobs")
    options = make_options(db_url, complete_job_batch_delay=3600.0).define_job(quick, "quick")
    worker = await options.init()
    run = asyncio.create_task(worker.run())
    await wait_until(lambda: resolved(len(done) == 5))
    assert completes == []  # still collecting
    assert await job_count(conn) == 5
    worker.request_shutdown()
    await asyncio.wait_for(run, 30)
    assert [sorted(c) for c in completes] == [sorted(done)]
    assert await job_count(conn) == 0


async def test_a_connection_killed_before_the_complete_lands_is_retried(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []
    attempts: list[int] = []
    real = store.complete_jobs

    async def killed_first(c: asyncpg.Connection, schema: str, worker_id: str,
                           ids: list[int]) -> None:
        attempts.append(len(ids))
        if len(attempts) == 1:
            await conn.execute("select pg_terminate_backend($1)", c.get_server_pid())
        await real(c, schema, worker_id, ids)

    async def quick(payload: Any, ctx: context.WorkerContext) -> None:
        ran.append(ctx.job_id)

    ids = [await add_job(conn, "quick", {}) for _ in range(3)]
    monkeypatch.setattr(store, "complete_jobs", killed_first)
    worker = await make_options(db_url).define_job(quick, "quick").init()
    await worker.run_once()
    assert sorted(ran) == sorted(ids)
    assert len(attempts) >= 2
    assert await job_count(conn) == 0


async def test_a_failure_whose_reply_was_lost_is_applied_exactly_once(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await conn.execute(f"""
        create table fail_writes (job_id bigint);
        create function record_fail_write() returns trigger language plpgsql as $$
        begin
          if new.last_error is distinct from old.last_error
             or new.run_at is distinct from old.run_at then
            insert into fail_writes values (new.id);
          end if;
          return new;
        end $$;
        create trigger record_fail_write after update on {S}._private_jobs
          for each row execute function record_fail_write();
    """)
    calls: list[int] = []
    real = store.fail_jobs

    async def reply_lost(c: asyncpg.Connection, schema: str, worker_id: str,
                         failures: list[store.Failure]) -> None:
        calls.append(len(failures))
        await real(c, schema, worker_id, failures)
        if len(calls) == 1:  # it landed; now the connection dies before we hear back
            await conn.execute("select pg_terminate_backend($1)", c.get_server_pid())
            await c.execute("select 1")

    async def broken(payload: Any) -> None:
        raise ValueError("broken")

    job_id = await add_job(conn, "broken", {})
    monkeypatch.setattr(store, "fail_jobs", reply_lost)
    worker = await make_options(db_url).define_job(broken, "broken").init()
    await worker.run_once()
    assert len(calls) >= 2  # retried
    assert await conn.fetchval("select count(*) from fail_writes where job_id = $1",
                               job_id) == 1
    row = await conn.fetchrow(f"select attempts, locked_by, last_error from {S}._private_jobs")
    assert row is not None
    assert row["attempts"] == 1 and row["locked_by"] is None and "broken" in row["last_error"]
