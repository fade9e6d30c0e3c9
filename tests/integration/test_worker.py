"""The worker loop against a real PostgreSQL: fetch, complete, fail, retry timing, batches,
serial queues, forbidden flags, unknown tasks, LISTEN wake-ups and stale locks."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from typing import Any, ClassVar

import asyncpg
import pytest

from graphile_worker_cli import context, tasks
from graphile_worker_cli.errors import BadInputError, SchemaTooNewError
from graphile_worker_cli.worker import store
from tests.helpers.database import listening
from tests.helpers.waiting import wait_until
from tests.helpers.worker import add_job, job_count, make_options, no_jobs

S = "graphile_worker"


async def test_runs_jobs_with_their_payloads_and_deletes_them(
    db_url: str, conn: asyncpg.Connection
) -> None:
    seen: list[Any] = []

    async def hello(payload: Any, ctx: context.WorkerContext) -> None:
        seen.append((payload, ctx.job.attempts, ctx.task_identifier))

    for i in range(12):
        await add_job(conn, "hello", {"i": i, "nested": [1, {"x": None}]})
    worker = await make_options(db_url).define_job(hello, "hello").init()
    await worker.run_once()
    assert sorted(p["i"] for p, _, _ in seen) == list(range(12))
    assert all(p["nested"] == [1, {"x": None}] and a == 1 and t == "hello" for p, a, t in seen)
    assert await job_count(conn) == 0


async def test_unknown_task_is_never_fetched(db_url: str, conn: asyncpg.Connection) -> None:
    async def known(payload: Any) -> None:
        return None

    other = await add_job(conn, "someone_elses_task", {"a": 1})
    await add_job(conn, "known", {})
    worker = await make_options(db_url).define_job(known, "known").init()
    await worker.run_once()
    row = await conn.fetchrow(f"select * from {S}._private_jobs where id = $1", other)
    assert row is not None
    assert (row["attempts"], row["locked_by"], row["last_error"]) == (0, None, None)
    assert await job_count(conn) == 1

    # A worker that does know the task runs it.
    ran: list[Any] = []

    async def someone_elses_task(payload: Any) -> None:
        ran.append(payload)

    worker2 = await make_options(db_url).define_job(
        someone_elses_task, "someone_elses_task"
    ).init()
    await worker2.run_once()
    assert ran == [{"a": 1}]


async def test_failure_backoff_follows_the_formula(db_url: str, conn: asyncpg.Connection) -> None:
    async def broken(payload: Any) -> None:
        raise RuntimeError(f"broken {payload['n']}")

    # attempts before this try -> backoff exp(least(attempts + 1, 10)) seconds
    cases = {0: 1, 1: 2, 4: 5, 9: 10, 15: 10}
    ids = {}
    for before in cases:
        job_id = await add_job(conn, "broken", {"n": before})
        await conn.execute(
            f"update {S}._private_jobs set attempts = $2 where id = $1", job_id, before
        )
        ids[before] = job_id
    t0 = await conn.fetchval("select now()")
    worker = await make_options(db_url).define_job(broken, "broken").init()
    await worker.run_once()
    t1 = await conn.fetchval("select clock_timestamp()")
    for before, exponent in cases.items():
        row = await conn.fetchrow(f"select * from {S}._private_jobs where id = $1", ids[before])
        assert row["attempts"] == before + 1
        assert row["last_error"] == f"RuntimeError: broken {before}"
        assert row["locked_by"] is None and row["locked_at"] is None
        backoff = await conn.fetchval("select exp($1::int) * interval '1 second'", exponent)
        assert t0 + backoff <= row["run_at"] <= t1 + backoff


async def test_permanent_failure_keeps_last_error(db_url: str, conn: asyncpg.Connection) -> None:
    async def doomed(payload: Any) -> None:
        raise ValueError("no way")

    job_id = await add_job(conn, "doomed", {}, max_attempts=2)
    worker = await make_options(db_url).define_job(doomed, "doomed").init()
    await worker.run_once()
    await conn.execute(f"update {S}._private_jobs set run_at = now() where id = $1", job_id)
    worker = await make_options(db_url).define_job(doomed, "doomed").init()
    await worker.run_once()
    row = await conn.fetchrow(f"select * from {S}._private_jobs where id = $1", job_id)
    assert (row["attempts"], row["max_attempts"]) == (2, 2)
    assert row["last_error"] == "ValueError: no way"
    assert row["is_available"] is False
    # A third run leaves it alone: permanently failed jobs are never fetched again.
    await conn.execute(f"update {S}._private_jobs set run_at = now() where id = $1", job_id)
    worker = await make_options(db_url).define_job(doomed, "doomed").init()
    await worker.run_once()
    assert await conn.fetchval(
        f"select attempts from {S}._private_jobs where id = $1", job_id
    ) == 2


class Item(tasks.BatchTaskHandler):
    IDENTIFIER: ClassVar[str] = "batch_items"
    n: int

    @classmethod
    async def run_batch(cls, items: list[Item], ctx: context.WorkerContext) -> list[object]:
        return [None if item.n % 2 == 0 else f"odd {item.n}" for item in items]


async def test_batch_partial_failure_retries_only_failed_items(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "batch_items", [{"n": n} for n in range(5)])
    worker = await make_options(db_url).define_batch_job(Item).init()
    await worker.run_once()
    row = await conn.fetchrow(f"select * from {S}._private_jobs where id = $1", job_id)
    assert json.loads(row["payload"]) == [{"n": 1}, {"n": 3}]
    assert row["attempts"] == 1
    assert "odd 1" in row["last_error"] and "odd 3" in row["last_error"]


class Greeting(tasks.TaskHandler):
    IDENTIFIER: ClassVar[str] = "greet"
    name: str

    async def run(self, ctx: context.WorkerContext) -> None:
        return None


async def test_invalid_payload_fails_the_job_and_the_worker_carries_on(
    db_url: str, conn: asyncpg.Connection
) -> None:
    bad = await add_job(conn, "greet", {"nom": "x"})
    await add_job(conn, "greet", {"name": "ok"})
    worker = await make_options(db_url).define_job(Greeting).init()
    await worker.run_once()
    rows = await conn.fetch(f"select * from {S}._private_jobs")
    assert [r["id"] for r in rows] == [bad]
    assert rows[0]["attempts"] == 1
    assert rows[0]["last_error"].startswith('invalid payload for task "greet": field "name"')
    assert rows[0]["run_at"] > await conn.fetchval("select now()")


async def test_named_queue_runs_one_job_at_a_time(db_url: str, conn: asyncpg.Connection) -> None:
    running: Counter[str] = Counter()
    most: Counter[str] = Counter()
    overall: list[int] = []

    async def step(payload: Any, ctx: context.WorkerContext) -> None:
        queue = ctx.job.queue_name or "-"
        running[queue] += 1
        most[queue] = max(most[queue], running[queue])
        overall.append(sum(running.values()))
        await asyncio.sleep(0.005)
        running[queue] -= 1

    for i in range(30):
        await add_job(conn, "step", {"i": i}, queue_name=f"q{i % 3}")
    for i in range(10):
        await add_job(conn, "step", {"i": i})
    worker = await make_options(db_url, concurrency=8).define_job(step, "step").init()
    await worker.run_once()
    assert await job_count(conn) == 0
    assert most["q0"] == most["q1"] == most["q2"] == 1
    assert max(overall) > 1


async def test_batch_fetch_takes_one_job_per_named_queue(
    db_url: str, conn: asyncpg.Connection
) -> None:
    for _ in range(5):
        await add_job(conn, "t", {}, queue_name="serial")
    for _ in range(3):
        await add_job(conn, "t", {})
    ids = await store.ensure_tasks(conn, S, ["t"])
    jobs = await store.fetch_jobs(conn, S, "me", list(ids.values()), 10, (), {ids["t"]: "t"})
    assert sorted(j.queue_name or "" for j in jobs) == ["", "", "", "serial"]
    assert all(j.task_identifier == "t" and j.attempts == 1 for j in jobs)
    locked = await conn.fetchval(
        f"select locked_by from {S}._private_job_queues where queue_name = 'serial'"
    )
    assert locked == "me"
    # The queue is locked: nothing more from it until that job is settled.
    again = await store.fetch_jobs(conn, S, "other", list(ids.values()), 10)
    assert again == []


async def test_forbidden_flags_are_skipped(db_url: str, conn: asyncpg.Connection) -> None:
    ran: list[Any] = []

    async def flagged(payload: Any) -> None:
        ran.append(payload)

    await add_job(conn, "flagged", {"f": "slow"}, flags=["slow"])
    await add_job(conn, "flagged", {"f": "other"}, flags=["other"])
    await add_job(conn, "flagged", {"f": None})
    worker = await (
        make_options(db_url).define_job(flagged, "flagged").add_forbidden_flag("slow").init()
    )
    await worker.run_once()
    assert sorted(str(p["f"]) for p in ran) == ["None", "other"]
    assert await job_count(conn) == 1


async def test_jobs_added_by_jobs_run_in_the_same_once_run(
    db_url: str, conn: asyncpg.Connection
) -> None:
    ran: list[int] = []

    async def chain(payload: Any, ctx: context.WorkerContext) -> None:
        ran.append(payload["n"])
        if payload["n"] < 5:
            await ctx.query(
                f"select {S}.add_job('chain', json_build_object('n', $1::int))", payload["n"] + 1
            )

    await add_job(conn, "chain", {"n": 0})
    worker = await make_options(db_url).define_job(chain, "chain").init()
    await worker.run_once()
    assert ran == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("own_pool", [False, True], ids=["url", "pg_pool"])
async def test_notification_wakes_an_idle_worker(
    db_url: str, conn: asyncpg.Connection, own_pool: bool
) -> None:
    done = asyncio.Event()

    async def ping(payload: Any) -> None:
        done.set()

    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4) if own_pool else None
    try:
        # A poll interval far beyond the test timeout: only LISTEN can deliver the job.
        settings: dict[str, Any] = (
            {"pg_pool": pool, "database_url": None} if own_pool else {}
        )
        worker = await make_options(db_url, poll_interval=3600, **settings).define_job(
            ping, "ping").init()
        runner = asyncio.create_task(worker.run())
        await wait_until(lambda: listening(conn))
        await add_job(conn, "ping", {})
        await asyncio.wait_for(done.wait(), 20)
        worker.request_shutdown()
        await runner
        await wait_until(lambda: no_jobs(conn))
    finally:
        if pool is not None:
            assert not pool._closed  # the worker leaves a pool it was given open
            await pool.close()


async def test_stale_locks_are_reset_before_a_once_run(
    db_url: str, conn: asyncpg.Connection
) -> None:
    ran: list[Any] = []

    async def stuck(payload: Any) -> None:
        ran.append(payload)

    job_id = await add_job(conn, "stuck", {"s": 1}, queue_name="stuckq")
    fresh = await add_job(conn, "stuck", {"s": 2})
    await conn.execute(
        f"update {S}._private_jobs set locked_by = 'dead', locked_at = now() - interval '5 hours',"
        " attempts = 1 where id = $1", job_id,
    )
    await conn.execute(
        f"update {S}._private_job_queues set locked_by = 'dead', "
        "locked_at = now() - interval '5 hours'"
    )
    await conn.execute(
        f"update {S}._private_jobs set locked_by = 'alive', locked_at = now() - interval '1 hour'"
        " where id = $1", fresh,
    )
    # Locks cannot be taken in the past: five hours passing also passes the moment gw's
    # maintenance row says a reset is due (set when the schema was migrated, just now).
    await conn.execute(
        f"update {S}._gw_maintenance set due_at = now() - interval '1 hour'"
        " where task = 'reset_stale_locks'"
    )
    worker = await make_options(db_url).define_job(stuck, "stuck").init()
    await worker.run_once()
    assert ran == [{"s": 1}]
    assert await conn.fetchval(f"select locked_by from {S}._private_jobs") == "alive"
    # The next reset is due when the lock left behind turns four hours old.
    due = await conn.fetchval(
        f"select due_at - (select locked_at from {S}._private_jobs) from {S}._gw_maintenance"
        " where task = 'reset_stale_locks'"
    )
    assert due == dt.timedelta(hours=4)


async def test_breaking_migration_notification_stops_the_worker(
    db_url: str, conn: asyncpg.Connection
) -> None:
    async def idle(payload: Any) -> None:
        return None

    worker = await make_options(db_url, poll_interval=3600).define_job(idle, "idle").init()
    runner = asyncio.create_task(worker.run())
    await wait_until(lambda: listening(conn))
    await conn.execute(
        """select pg_notify('worker:migrate', '{"migrationNumber": 5, "breaking": false}')"""
    )
    await conn.execute(
        """select pg_notify('worker:migrate', '{"migrationNumber": 21, "breaking": true}')"""
    )
    with pytest.raises(SchemaTooNewError, match="breaking migration 21"):
        await asyncio.wait_for(runner, 20)


async def test_shutdown_aborts_running_jobs_past_grace_and_keeps_their_attempt(
    db_url: str, conn: asyncpg.Connection
) -> None:
    started = asyncio.Event()
    aborted: list[bool] = []

    async def forever(payload: Any, ctx: context.WorkerContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            aborted.append(ctx.abort_signal.is_set())

    job_id = await add_job(conn, "forever", {}, queue_name="longq")
    worker = await make_options(
        db_url, shutdown_grace_period=0.2, shutdown_interrupted_job_retry_delay=30
    ).define_job(forever, "forever").init()
    runner = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 20)
    worker.request_shutdown()
    await asyncio.wait_for(runner, 20)
    assert aborted == [True]
    row = await conn.fetchrow(f"select * from {S}._private_jobs where id = $1", job_id)
    assert (row["attempts"], row["locked_by"], row["last_error"]) == (0, None, None)
    assert row["run_at"] > await conn.fetchval("select now() + interval '20 seconds'")
    queue = await conn.fetchrow(f"select * from {S}._private_job_queues")
    assert queue["locked_by"] is None


async def test_shutdown_lets_running_jobs_finish_within_grace(
    db_url: str, conn: asyncpg.Connection
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(payload: Any) -> None:
        started.set()
        await release.wait()

    await add_job(conn, "slow", {})
    worker = await make_options(db_url, shutdown_grace_period=60).define_job(slow, "slow").init()
    runner = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 20)
    worker.request_shutdown()
    await asyncio.wait_for(worker.stopping.wait(), 20)
    await add_job(conn, "slow", {"late": True})  # must not be fetched any more
    release.set()
    await asyncio.wait_for(runner, 20)
    rows = await conn.fetch(f"select payload, attempts from {S}._private_jobs")
    assert [(json.loads(r["payload"]), r["attempts"]) for r in rows] == [({"late": True}, 0)]


async def test_second_shutdown_request_cuts_the_grace_period_short(
    db_url: str, conn: asyncpg.Connection
) -> None:
    started = asyncio.Event()

    async def stubborn(payload: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    await add_job(conn, "stubborn", {})
    worker = await make_options(db_url, shutdown_grace_period=3600).define_job(
        stubborn, "stubborn"
    ).init()
    runner = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 20)
    worker.request_shutdown()
    await asyncio.wait_for(worker.stopping.wait(), 20)
    worker.request_shutdown()
    await asyncio.wait_for(runner, 20)
    assert await conn.fetchval(f"select attempts from {S}._private_jobs") == 0


async def test_connections_killed_mid_run_every_job_runs_once(
    db_url: str, conn: asyncpg.Connection
) -> None:
    runs: Counter[int] = Counter()

    async def work(payload: Any) -> None:
        runs[payload["i"]] += 1
        await asyncio.sleep(0.002)

    total = 300
    for start in range(0, total, 100):
        await conn.execute(
            f"""select {S}.add_job('work', json_build_object('i', i),
                        queue_name := case when i % 4 = 0 then 'kq' || (i % 3) end)
                from generate_series($1::int, $2::int) as i""",
            start, start + 99,
        )
    worker = await make_options(db_url, concurrency=6, poll_interval=0.1).define_job(
        work, "work"
    ).init()
    runner = asyncio.create_task(worker.run())
    my_pid = await conn.fetchval("select pg_backend_pid()")
    kills = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while await job_count(conn) > 0:
        assert loop.time() < deadline, "queue did not drain"
        if kills < 6 and sum(runs.values()) > kills * 40:
            killed = await conn.fetchval(
                "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = current_database() and pid <> $1) as t", my_pid
            )
            kills += 1 if killed else 0
        await asyncio.sleep(0.02)
    worker.request_shutdown()
    await asyncio.wait_for(runner, 30)
    assert kills >= 3
    assert sorted(runs) == list(range(total))
    assert set(runs.values()) == {1}


async def test_init_rejects_options_without_tasks(db_url: str) -> None:
    with pytest.raises(BadInputError, match="no tasks"):
        await make_options(db_url).init()


async def test_odd_schema_name(pg_admin_url: str) -> None:
    from tests.helpers.database import create_database, drop_database, unique_name

    name = unique_name("gw_odd")
    url = await create_database(pg_admin_url, name)
    schema = 'odd "name"'
    ran: list[Any] = []

    async def odd(payload: Any) -> None:
        ran.append(payload)

    try:
        worker = await make_options(url, schema=schema, migrate=True).define_job(
            odd, "odd").init()
        c = await asyncpg.connect(url)
        try:
            await c.execute('select "odd ""name""".add_job($1, $2::json)', "odd", '{"ok": 1}')
            await worker.run_once()
            assert ran == [{"ok": 1}]
        finally:
            await c.close()
    finally:
        await drop_database(pg_admin_url, name)


async def test_cron_runs_as_a_supervised_side_task(
    db_url: str, conn: asyncpg.Connection
) -> None:
    async def tick(payload: Any) -> None:
        return None

    worker = await (
        make_options(db_url).define_job(tick, "tick").with_cron("0 4 * * * tick ?id=nightly")
        .init()
    )
    runner = asyncio.create_task(worker.run())

    async def known() -> bool:
        count: int = await conn.fetchval(
            f"select count(*) from {S}._private_known_crontabs where identifier = 'nightly'"
        )
        return count == 1

    await wait_until(known)
    worker.request_shutdown()
    await asyncio.wait_for(runner, 20)


async def test_cancelling_one_worker_leaves_a_shared_shutdown_signal_alone(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """Workers may share one ShutdownSignal. Cancelling one of them stops that one only
    (its running job handed back, attempt restored); the other keeps its job and its grace
    period."""
    from graphile_worker_cli.worker.shutdown import ShutdownSignal

    shared = ShutdownSignal()
    started = {"a": asyncio.Event(), "b": asyncio.Event()}
    release_b = asyncio.Event()

    async def job_a(payload: Any) -> None:
        started["a"].set()
        await asyncio.Event().wait()  # runs until cancelled

    async def job_b(payload: Any) -> None:
        started["b"].set()
        await release_b.wait()

    a_id = await add_job(conn, "job_a", {})
    b_id = await add_job(conn, "job_b", {})
    worker_a = await make_options(db_url, shutdown_signal=shared).define_job(job_a, "job_a").init()
    worker_b = await make_options(db_url, shutdown_signal=shared).define_job(job_b, "job_b").init()
    run_a = asyncio.create_task(worker_a.run())
    run_b = asyncio.create_task(worker_b.run())
    await asyncio.wait_for(asyncio.gather(started["a"].wait(), started["b"].wait()), 20)

    run_a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run_a
    assert not shared.is_set()
    assert not worker_b.stopping.is_set()
    row = await conn.fetchrow(f"select attempts, locked_by from {S}._private_jobs where id = $1",
                              a_id)
    assert row is not None and (row["attempts"], row["locked_by"]) == (0, None)

    release_b.set()
    await wait_until(lambda: _gone(conn, b_id))
    shared.set("test over")
    await asyncio.wait_for(run_b, 20)


async def _gone(conn: asyncpg.Connection, job_id: int) -> bool:
    left: int = await conn.fetchval(f"select count(*) from {S}._private_jobs where id = $1",
                                    job_id)
    return left == 0
