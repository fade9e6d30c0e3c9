"""Dead-worker recovery on a real database: registry, sweep rules, the heartbeat task."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from typing import Any

import asyncpg

from graphile_worker_cli import migrate, recovery
from graphile_worker_cli.queries import recovery as queries
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers.recovery import (
    SCHEMA,
    add_locked_job,
    age_heartbeat,
    job_row,
    register,
)
from tests.helpers.waiting import wait_until
from tests.helpers.worker import make_options

Sweep = recovery.SweepStaleWorkersOptions


async def registered_ids(conn: asyncpg.Connection) -> set[str]:
    return {r["id"] for r in await conn.fetch("select id from graphile_worker._gw_workers")}


async def test_stale_registered_worker_is_swept_and_its_jobs_recovered(
    rconn: asyncpg.Connection,
) -> None:
    await register(rconn, "gw-dead")
    await register(rconn, "gw-alive")
    queued = await add_locked_job(rconn, "gw-dead", queue="serial", attempts=3)
    plain = await add_locked_job(rconn, "gw-dead")
    alive_job = await add_locked_job(rconn, "gw-alive")
    await age_heartbeat(rconn, "gw-dead", "10 minutes")

    result = await recovery.sweep_stale_workers(
        rconn, SCHEMA, Sweep(threshold=60, recovery_delay=30)
    )

    assert result.worker_ids == ["gw-dead"]
    assert sorted(result.recovered_job_ids) == sorted([queued, plain])
    assert result.unlocked_queue_names == ["serial"]
    assert not result.skipped and not result.dry_run
    for job_id, attempts in ((queued, 3), (plain, 1)):
        row = await job_row(rconn, job_id)
        assert row["locked_by"] is None and row["locked_at"] is None
        # The attempt the dead worker was running is used, as the reference's reset does.
        assert row["attempts"] == attempts
        # It keeps its place: the original run_at (a minute ago) plus the delay.
        assert -35 < row["delay"].total_seconds() < -25
        assert re.fullmatch(
            r"worker gw-dead died while running this job \(recovered by sweep at "
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\)",
            row["last_error"],
        ), row["last_error"]
    queue = await rconn.fetchrow(
        "select locked_by, locked_at from graphile_worker._private_job_queues"
        " where queue_name = 'serial'"
    )
    assert queue is not None and queue["locked_by"] is None and queue["locked_at"] is None
    assert await registered_ids(rconn) == {"gw-alive"}
    assert (await job_row(rconn, alive_job))["locked_by"] == "gw-alive"


async def test_fresh_worker_is_not_swept(rconn: asyncpg.Connection) -> None:
    await register(rconn, "gw-fresh")
    job_id = await add_locked_job(rconn, "gw-fresh", locked_ago="3 hours")
    await age_heartbeat(rconn, "gw-fresh", "5 seconds")

    result = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))

    assert result.worker_ids == [] and result.recovered_job_ids == []
    assert (await job_row(rconn, job_id))["locked_by"] == "gw-fresh"
    assert await registered_ids(rconn) == {"gw-fresh"}


async def test_threshold_is_never_below_three_heartbeat_intervals_of_the_worker(
    rconn: asyncpg.Connection,
) -> None:
    await register(rconn, "gw-slow-beat", interval=100)
    await add_locked_job(rconn, "gw-slow-beat")
    await age_heartbeat(rconn, "gw-slow-beat", "250 seconds")

    assert (await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=0))).worker_ids == []

    await age_heartbeat(rconn, "gw-slow-beat", "310 seconds")
    result = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=0))
    assert result.worker_ids == ["gw-slow-beat"]


async def test_unregistered_lock_holder_is_never_swept(rconn: asyncpg.Connection) -> None:
    reference_job = await add_locked_job(rconn, "pool-xyz", queue="ref-q", locked_ago="3h59m")
    await register(rconn, "gw-dead")
    dead_job = await add_locked_job(rconn, "gw-dead")
    await age_heartbeat(rconn, "gw-dead", "1 hour")

    result = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=0))

    assert result.worker_ids == ["gw-dead"] and result.recovered_job_ids == [dead_job]
    row = await job_row(rconn, reference_job)
    assert row["locked_by"] == "pool-xyz" and row["attempts"] == 1
    queue_holder = await rconn.fetchval(
        "select locked_by from graphile_worker._private_job_queues where queue_name = 'ref-q'"
    )
    assert queue_holder == "pool-xyz"
    holders = await recovery.list_unregistered_lock_holders(rconn, SCHEMA)
    assert [(h.id, h.jobs_held) for h in holders] == [("pool-xyz", 1)]


async def test_remove_job_on_a_dead_workers_job_is_not_undone(rconn: asyncpg.Connection) -> None:
    await register(rconn, "gw-dead")
    job_id = await add_locked_job(rconn, "gw-dead", key="k1", attempts=1)
    await rconn.execute("select graphile_worker.remove_job('k1')")
    await age_heartbeat(rconn, "gw-dead", "1 hour")

    result = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))

    assert result.recovered_job_ids == [job_id]
    row = await job_row(rconn, job_id)
    assert row["locked_by"] is None
    assert row["attempts"] == row["max_attempts"] and row["is_available"] is False


async def test_final_attempt_of_a_dead_worker_fails_the_job_for_good(
    rconn: asyncpg.Connection,
) -> None:
    await register(rconn, "gw-dead")
    job_id = await add_locked_job(rconn, "gw-dead", attempts=1, max_attempts=1)
    await age_heartbeat(rconn, "gw-dead", "1 hour")

    await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))

    row = await job_row(rconn, job_id)
    assert row["attempts"] == 1 and row["locked_by"] is None
    assert row["last_error"].startswith("worker gw-dead died while running this job")
    runnable = await rconn.fetchval(
        "select count(*) from graphile_worker.jobs where id = $1 and attempts < max_attempts",
        job_id,
    )
    assert runnable == 0


async def test_late_worker_whose_session_holds_its_liveness_lock_is_never_swept(
    rconn: asyncpg.Connection, db_url: str
) -> None:
    await register(rconn, "gw-stalled")
    job_id = await add_locked_job(rconn, "gw-stalled")
    await age_heartbeat(rconn, "gw-stalled", "1 hour")
    session = await asyncpg.connect(db_url)
    try:
        assert await recovery.take_liveness_lock(session, SCHEMA, "gw-stalled")
        listed = await recovery.list_active_workers(rconn, SCHEMA, threshold=60)
        assert [(r.late, r.session_alive, r.stale) for r in listed] == [(True, True, False)]
        result = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))
        assert result.worker_ids == [] and result.recovered_job_ids == []
        assert (await job_row(rconn, job_id))["locked_by"] == "gw-stalled"
    finally:
        await session.close()  # the process dies: its session, and the lock, are gone
    result = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))
    assert result.worker_ids == ["gw-stalled"] and result.recovered_job_ids == [job_id]


async def test_fresh_worker_whose_session_is_gone_is_not_swept(
    rconn: asyncpg.Connection,
) -> None:
    await register(rconn, "gw-reconnecting")
    await add_locked_job(rconn, "gw-reconnecting")
    result = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))
    assert result.worker_ids == []


async def test_liveness_lock_is_held_by_one_session_at_a_time(
    rconn: asyncpg.Connection, db_url: str
) -> None:
    first = await asyncpg.connect(db_url)
    second = await asyncpg.connect(db_url)
    try:
        assert await recovery.take_liveness_lock(first, SCHEMA, "gw-one")
        assert not await recovery.take_liveness_lock(second, SCHEMA, "gw-one")
        assert await recovery.take_liveness_lock(second, SCHEMA, "gw-other")
        await first.close()
        assert await recovery.take_liveness_lock(second, SCHEMA, "gw-one")
    finally:
        await first.close()
        await second.close()


async def test_a_sweeper_stalled_inside_its_transaction_loses_the_sweep_lock(
    rconn: asyncpg.Connection, db_url: str
) -> None:
    await register(rconn, "gw-dead")
    await add_locked_job(rconn, "gw-dead")
    await age_heartbeat(rconn, "gw-dead", "1 hour")
    stalled = await asyncpg.connect(db_url)
    try:
        # A sweeper whose event loop froze right after taking the lock.
        await stalled.execute("begin")
        began = await stalled.fetchrow(
            queries.BEGIN_SWEEP.sql(SCHEMA), queries.sweep_lock_key(SCHEMA), "10s", "1s"
        )
        assert began is not None and began["locked"]
        assert (await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))).skipped

        async def swept() -> bool:
            result = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))
            return result.worker_ids == ["gw-dead"]

        await wait_until(swept, timeout=10)
    finally:
        stalled.terminate()


async def test_resilient_flag_extends_the_threshold_of_its_worker(
    rconn: asyncpg.Connection,
) -> None:
    await register(rconn, "gw-resilient")
    flagged = await add_locked_job(
        rconn, "gw-resilient", flags=[recovery.INFRASTRUCTURE_RESILIENT_FLAG]
    )
    other = await add_locked_job(rconn, "gw-resilient")
    await register(rconn, "gw-plain")
    await add_locked_job(rconn, "gw-plain")
    await age_heartbeat(rconn, "gw-resilient", "120 seconds")
    await age_heartbeat(rconn, "gw-plain", "120 seconds")
    options = Sweep(threshold=60, resilient_sweep_threshold_multiplier=5)

    assert (await recovery.sweep_stale_workers(rconn, SCHEMA, options)).worker_ids == ["gw-plain"]

    await age_heartbeat(rconn, "gw-resilient", "301 seconds")
    result = await recovery.sweep_stale_workers(rconn, SCHEMA, options)
    assert result.worker_ids == ["gw-resilient"]
    assert sorted(result.recovered_job_ids) == sorted([flagged, other])


async def test_dry_run_reports_but_changes_nothing(rconn: asyncpg.Connection) -> None:
    await register(rconn, "gw-dead")
    job_id = await add_locked_job(rconn, "gw-dead", queue="q")
    await age_heartbeat(rconn, "gw-dead", "1 hour")
    before = await rconn.fetch("select * from graphile_worker._private_jobs order by id")

    result = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60, dry_run=True))

    assert result.dry_run and result.worker_ids == ["gw-dead"]
    assert result.recovered_job_ids == [job_id] and result.unlocked_queue_names == ["q"]
    assert await rconn.fetch("select * from graphile_worker._private_jobs order by id") == before
    assert await registered_ids(rconn) == {"gw-dead"}
    assert await rconn.fetchval(
        "select locked_by from graphile_worker._private_job_queues where queue_name = 'q'"
    ) == "gw-dead"


async def test_second_sweeper_skips_while_the_sweep_lock_is_held(
    rconn: asyncpg.Connection, db_url: str
) -> None:
    await register(rconn, "gw-dead")
    await add_locked_job(rconn, "gw-dead")
    await age_heartbeat(rconn, "gw-dead", "1 hour")
    other = await asyncpg.connect(db_url)
    try:
        async with other.transaction():
            began = await other.fetchrow(
                queries.BEGIN_SWEEP.sql(SCHEMA), queries.sweep_lock_key(SCHEMA), "10s", "5s"
            )
            assert began is not None and began["locked"]
            skipped = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))
        assert skipped.skipped and skipped.worker_ids == []
        assert await registered_ids(rconn) == {"gw-dead"}
        done = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))
        assert done.worker_ids == ["gw-dead"]
    finally:
        await other.close()


async def test_two_concurrent_sweepers_recover_each_job_once(
    rconn: asyncpg.Connection, db_url: str
) -> None:
    for n in range(5):
        await register(rconn, f"gw-dead-{n}")
        await add_locked_job(rconn, f"gw-dead-{n}", attempts=2)
        await age_heartbeat(rconn, f"gw-dead-{n}", "1 hour")
    pool = await asyncpg.create_pool(db_url, min_size=2, max_size=2)
    try:
        results = await asyncio.gather(
            recovery.sweep_stale_workers(pool, SCHEMA, Sweep(threshold=60)),
            recovery.sweep_stale_workers(pool, SCHEMA, Sweep(threshold=60)),
        )
    finally:
        await pool.close()
    swept = [w for r in results for w in r.worker_ids]
    assert sorted(swept) == [f"gw-dead-{n}" for n in range(5)]
    attempts = await rconn.fetch("select attempts from graphile_worker._private_jobs")
    assert [r["attempts"] for r in attempts] == [2] * 5


async def test_sweep_wakes_idle_workers(rconn: asyncpg.Connection, db_url: str) -> None:
    await register(rconn, "gw-dead")
    await add_locked_job(rconn, "gw-dead")
    await age_heartbeat(rconn, "gw-dead", "1 hour")
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(db_url)
    try:
        await listener.add_listener("jobs:insert", lambda *args: heard.put_nowait(args[3]))
        await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))
        payload = json.loads(await asyncio.wait_for(heard.get(), timeout=10))
    finally:
        await listener.close()
    assert payload["count"] == 1


async def test_list_active_workers(rconn: asyncpg.Connection) -> None:
    await register(rconn, "gw-a")
    await register(rconn, "gw-b")
    await add_locked_job(rconn, "gw-a", queue="qa")
    await add_locked_job(rconn, "gw-a")
    await age_heartbeat(rconn, "gw-b", "2 minutes")

    rows = {row.id: row for row in await recovery.list_active_workers(rconn, SCHEMA, threshold=60)}

    assert set(rows) == {"gw-a", "gw-b"}
    assert (rows["gw-a"].jobs_held, rows["gw-a"].queues_held, rows["gw-a"].stale) == (2, 1, False)
    assert (rows["gw-b"].jobs_held, rows["gw-b"].stale) == (0, True)
    assert rows["gw-b"].heartbeat_age >= 119
    assert rows["gw-a"].tasks == ["recovery_task"] and rows["gw-a"].threshold == 60


async def test_register_again_keeps_started_at_and_heartbeat_reports_missing_row(
    rconn: asyncpg.Connection,
) -> None:
    assert await recovery.register_worker(rconn, SCHEMA, "gw-x", heartbeat_interval=1)
    assert not await recovery.register_worker(rconn, SCHEMA, "gw-x", heartbeat_interval=1)
    assert await recovery.heartbeat(rconn, SCHEMA, "gw-x")
    await recovery.deregister_worker(rconn, SCHEMA, "gw-x")
    assert not await recovery.heartbeat(rconn, SCHEMA, "gw-x")


async def test_worker_utils_delegates(rconn: asyncpg.Connection, db_url: str) -> None:
    await register(rconn, "gw-dead")
    await add_locked_job(rconn, "gw-dead")
    await age_heartbeat(rconn, "gw-dead", "1 hour")
    async with await WorkerUtils.connect(db_url) as worker_utils:
        listed = await worker_utils.list_active_workers(threshold=60)
        assert [(row.id, row.stale, row.jobs_held) for row in listed] == [("gw-dead", True, 1)]
        result = await worker_utils.sweep_stale_workers(Sweep(threshold=60))
    assert result.worker_ids == ["gw-dead"] and len(result.recovered_job_ids) == 1


async def test_registry_in_an_odd_schema_name(empty_db_url: str) -> None:
    schema = 'odd "name"'
    conn = await asyncpg.connect(empty_db_url)
    try:
        await migrate.migrate(conn, schema)
        assert await conn.fetchval(
            "select count(*) from pg_tables where schemaname = $1 and tablename = '_gw_workers'",
            schema,
        ) == 1
        assert await conn.fetchval(
            'select count(*) from "odd ""name""".migrations where id > 20'
        ) == 0
        await recovery.register_worker(conn, schema, "gw-odd", heartbeat_interval=1)
        await conn.execute(
            'update "odd ""name"""._gw_workers'
            " set last_heartbeat_at = now() - interval '1 hour'"
        )
        assert [r.id for r in await recovery.list_active_workers(conn, schema)] == ["gw-odd"]
        result = await recovery.sweep_stale_workers(conn, schema, Sweep(threshold=60))
        assert result.worker_ids == ["gw-odd"]
    finally:
        await conn.close()


async def test_deregister_keeps_the_row_while_the_worker_holds_locks(
    rconn: asyncpg.Connection,
) -> None:
    await register(rconn, "gw-stuck")
    job_id = await add_locked_job(rconn, "gw-stuck")
    assert not await recovery.deregister_worker(rconn, SCHEMA, "gw-stuck")
    assert await registered_ids(rconn) == {"gw-stuck"}
    await rconn.execute(
        "update graphile_worker._private_jobs set locked_by = null, locked_at = null"
        " where id = $1", job_id,
    )
    assert await recovery.deregister_worker(rconn, SCHEMA, "gw-stuck")
    assert await registered_ids(rconn) == set()


async def test_a_sweeper_never_sweeps_itself(rconn: asyncpg.Connection) -> None:
    await register(rconn, "gw-me")
    await add_locked_job(rconn, "gw-me")
    await age_heartbeat(rconn, "gw-me", "1 hour")
    mine = await recovery.sweep_stale_workers(
        rconn, SCHEMA, Sweep(threshold=60), sweeper_id="gw-me"
    )
    assert mine.worker_ids == []
    other = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=60))
    assert other.worker_ids == ["gw-me"]


FAST = recovery.WorkerRecoveryConfig(
    heartbeat_interval=0.2, sweep_interval=0.5, sweep_threshold=3, recovery_delay=0
)


async def heartbeat_at(conn: asyncpg.Connection, worker_id: str) -> Any:
    return await conn.fetchval(
        "select last_heartbeat_at from graphile_worker._gw_workers where id = $1", worker_id
    )


async def test_heartbeat_survives_termination_of_its_connection(
    rconn: asyncpg.Connection, db_url: str
) -> None:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    stop = asyncio.Event()
    task = asyncio.create_task(
        recovery.run_worker_recovery(
            pool, SCHEMA, "gw-hb", FAST, stop=stop, tasks=["t"], url=db_url
        )
    )
    try:
        async def registered() -> bool:
            return await heartbeat_at(rconn, "gw-hb") is not None

        await wait_until(registered)
        killed = await rconn.fetch(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where application_name = 'gw-liveness gw-hb'"
        )
        assert [r[0] for r in killed] == [True]
        after_kill = await rconn.fetchval("select now()")

        async def beats_again() -> bool:
            beat = await heartbeat_at(rconn, "gw-hb")
            return beat is not None and beat > after_kill

        await wait_until(beats_again)
        assert not task.done()
        # It holds its liveness lock again, on its new session.
        assert not await recovery.take_liveness_lock(rconn, SCHEMA, "gw-hb")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await pool.close()
    assert await registered_ids(rconn) == set()


async def test_heartbeat_registers_again_when_its_row_vanished(
    rconn: asyncpg.Connection, db_url: str
) -> None:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    stop = asyncio.Event()
    task = asyncio.create_task(
        recovery.run_worker_recovery(pool, SCHEMA, "gw-back", FAST, stop=stop, tasks=["t"])
    )
    try:
        async def registered() -> bool:
            return await heartbeat_at(rconn, "gw-back") is not None

        await wait_until(registered)
        await recovery.deregister_worker(rconn, SCHEMA, "gw-back")
        await wait_until(registered)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await pool.close()


async def test_running_recovery_sweeps_a_dead_worker(
    rconn: asyncpg.Connection, db_url: str
) -> None:
    await register(rconn, "gw-dead")
    job_id = await add_locked_job(rconn, "gw-dead")
    await age_heartbeat(rconn, "gw-dead", "1 minute")
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    stop = asyncio.Event()
    task = asyncio.create_task(
        recovery.run_worker_recovery(pool, SCHEMA, "gw-sweeper", FAST, stop=stop)
    )
    try:
        async def recovered() -> bool:
            return (await job_row(rconn, job_id))["locked_by"] is None

        await wait_until(recovered)
        assert await registered_ids(rconn) == {"gw-sweeper"}
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await pool.close()


async def test_worker_applies_the_worker_recovery_config_it_is_given(
    rconn: asyncpg.Connection, db_url: str
) -> None:
    await register(rconn, "gw-dead")
    plain = await add_locked_job(rconn, "gw-dead")
    await register(rconn, "gw-slow")
    slow = await add_locked_job(rconn, "gw-slow", flags=["slow"])
    await age_heartbeat(rconn, "gw-dead", "1 minute")
    await age_heartbeat(rconn, "gw-slow", "1 minute")
    config = recovery.WorkerRecoveryConfig(
        heartbeat_interval=0.7, sweep_interval=0.5, sweep_threshold=5, recovery_delay=600,
        resilient_sweep_threshold_multiplier=100, resilient_job_flags=("slow",),
    )

    async def never_fetched(payload: Any) -> None:
        raise AssertionError("no job of this task exists")

    worker = await make_options(db_url, worker_recovery=config).define_job(
        never_fetched, "never_fetched"
    ).init()
    running = asyncio.create_task(worker.run())
    try:
        async def recovered() -> bool:
            return (await job_row(rconn, plain))["locked_by"] is None

        await wait_until(recovered)
        interval = await rconn.fetchval(
            "select extract(epoch from heartbeat_interval)::float8"
            " from graphile_worker._gw_workers where id = $1", worker.worker_id,
        )
        assert interval == 0.7
        assert (await job_row(rconn, plain))["delay"] > timedelta(seconds=500)
        # Its flag is resilient under this config, so gw-slow is not dead yet.
        assert (await job_row(rconn, slow))["locked_by"] == "gw-slow"
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(running, timeout=20)
