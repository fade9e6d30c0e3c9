"""Faults with real processes: kill -9, terminated connections, PostgreSQL restarted under
load, and a (scaled-down) soak with random kills. (A reference worker beside gw workers:
tests/interop/test_faults_interop.py.)

Every wait is a poll of the database with a deadline. Recovery settings are small
(heartbeat 0.5 s, sweep every 1 s, threshold 3 s, no delay: see tests/helpers/faults.py).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.helpers.faults import (
    AFTER_TWO_THRESHOLDS,
    RECOVERY_DELAY,
    RUNS_TABLE,
    SWEEP_INTERVAL,
    THRESHOLD,
    GwProcess,
    wait_for,
    worker_id_of,
    write_tasks,
)

# Startup of a second process and scheduling noise on a busy CI machine.
MARGIN = 15.0
RECOVERY_BOUND = THRESHOLD + SWEEP_INTERVAL + RECOVERY_DELAY + MARGIN


async def add_jobs(
    conn: asyncpg.Connection, count: int, payload: str = "{}", *, max_attempts: int = 25
) -> list[int]:
    rows = await conn.fetch(
        "select (graphile_worker.add_job('record', $1::json, max_attempts => $2)).id"
        " from generate_series(1, $3)",
        payload, max_attempts, count,
    )
    return [row["id"] for row in rows]


async def runs_by_job(conn: asyncpg.Connection) -> dict[int, list[str]]:
    runs: dict[int, list[str]] = {}
    for row in await conn.fetch("select job_id, worker_id from fault_runs order by at"):
        runs.setdefault(row["job_id"], []).append(row["worker_id"])
    return runs


async def test_kill_9_worker_jobs_run_again_on_another_worker(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    tasks = write_tasks(tmp_path)
    log = tmp_path / "workers.log"
    a = await GwProcess.start(db_url, tasks, log, "-j", "4", hold=True)
    b: GwProcess | None = None
    try:
        quick = await add_jobs(fconn, 10)
        await wait_for(fconn, "select count(*) = 0 from graphile_worker._private_jobs",
                       what="quick jobs done", log=log)
        held = await add_jobs(fconn, 4, '{"hold": true}')
        await wait_for(
            fconn, "select count(*) = 4 from fault_runs where job_id = any($1::bigint[])", held,
            what="A holds 4 jobs", log=log,
        )
        a_id = await worker_id_of(fconn, a.pid)
        b = await GwProcess.start(db_url, tasks, log, "-j", "4")
        await wait_for(fconn, "select count(*) = 2 from graphile_worker._gw_workers",
                       what="B registered", log=log)

        await a.kill()
        took = await wait_for(
            fconn, "select count(*) = 0 from graphile_worker._private_jobs",
            timeout=RECOVERY_BOUND, what="held jobs recovered and run by B", log=log,
        )
        print(f"kill -9 -> held jobs completed by the other worker in {took:.2f}s")

        b_id = await worker_id_of(fconn, b.pid)
        runs = await runs_by_job(fconn)
        assert {job: runs[job] for job in quick} == {job: [a_id] for job in quick}
        assert {job: runs[job] for job in held} == {job: [a_id, b_id] for job in held}
        registered = await fconn.fetch("select id from graphile_worker._gw_workers")
        assert [row["id"] for row in registered] == [b_id]
    finally:
        await a.kill()
        if b is not None:
            assert await b.stop() == 0
    assert await fconn.fetchval("select count(*) from graphile_worker._gw_workers") == 0


async def test_worker_whose_connections_are_all_terminated_keeps_heartbeating(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    tasks = write_tasks(tmp_path)
    log = tmp_path / "worker.log"
    worker = await GwProcess.start(db_url, tasks, log, "-j", "2", hold=True)
    try:
        [held] = await add_jobs(fconn, 1, '{"hold": true}')
        await wait_for(fconn, "select count(*) = 1 from fault_runs", what="job held", log=log)
        worker_id = await worker_id_of(fconn, worker.pid)

        killed = await fconn.fetchval(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
        )
        assert killed >= 2  # at least the pool and the heartbeat connection
        cut = await fconn.fetchval("select now()")
        # A dead worker registered right after the cut: once it is swept, we know this
        # worker's sweeper works again, and it had every chance to sweep itself.
        await fconn.execute(
            "insert into graphile_worker._gw_workers (id, host, pid, version,"
            " heartbeat_interval, last_heartbeat_at)"
            " values ('gw-ghost', 'nowhere', 0, 'x', interval '0.1s', now() - interval '1h')"
        )
        await wait_for(
            fconn, "select last_heartbeat_at > $2 from graphile_worker._gw_workers where id = $1",
            worker_id, cut, what="heartbeat after reconnect", log=log,
        )
        await wait_for(
            fconn, "select not exists (select 1 from graphile_worker._gw_workers"
            " where id = 'gw-ghost')", what="a sweep after reconnect", log=log,
        )
        await wait_for(
            fconn, AFTER_TWO_THRESHOLDS, cut, THRESHOLD,
            what="two thresholds after the cut", log=log,
        )
        job = await fconn.fetchrow(
            "select locked_by, last_error from graphile_worker._private_jobs where id = $1", held
        )
        assert job is not None and job["locked_by"] == worker_id and job["last_error"] is None
        assert await fconn.fetchval("select count(*) from fault_runs") == 1
        assert await fconn.fetchval(
            "select count(*) from graphile_worker._gw_workers where id = $1", worker_id
        ) == 1
    finally:
        await worker.kill()


@pytest.fixture
async def private_pg() -> AsyncIterator[tuple[str, Path, str | None]]:
    """A PostgreSQL server of this test's own (pgserver), to restart at will."""
    pgserver: Any = importlib.import_module("pgserver")  # the [dev] extra; untyped

    # Not under tmp_path: as root, pgserver runs the server as its own user, which cannot
    # enter pytest's private temporary directory.
    root = Path(tempfile.mkdtemp(prefix="gw-fault-pg-"))
    data = root / "pgdata"
    server = await asyncio.to_thread(pgserver.get_server, data, cleanup_mode="stop")
    try:
        yield server.get_uri(), data, server.system_user
    finally:
        await asyncio.to_thread(server.cleanup)
        shutil.rmtree(root, ignore_errors=True)


async def restart_postgres(data: Path, user: str | None) -> None:
    pgserver: Any = importlib.import_module("pgserver")

    await asyncio.to_thread(
        pgserver.pg_ctl, ["-w", "-m", "fast", "restart"], pgdata=data, user=user, timeout=60
    )


async def connect_retrying(url: str, timeout: float = 30.0) -> asyncpg.Connection:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncpg.connect(url)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_postgres_restart_under_load_loses_no_job(
    private_pg: tuple[str, Path, str | None], tmp_path: Path
) -> None:
    url, data, user = private_pg
    tasks = write_tasks(tmp_path)
    log = tmp_path / "workers.log"
    ok_count, fail_count = 300, 60
    first = await GwProcess.start(url, tasks, log, "-j", "4")
    workers = [first]
    conn = await connect_retrying(url)
    try:
        await wait_for(conn, "select to_regclass('graphile_worker._gw_workers') is not null",
                       what="migrated", log=log)
        await conn.execute(RUNS_TABLE)
        workers.append(await GwProcess.start(url, tasks, log, "-j", "4"))
        ok = await add_jobs(conn, ok_count, '{"sleep": 0.01}')
        fail = await add_jobs(conn, fail_count, '{"fail": true}', max_attempts=2)
        for worker in workers:  # a worker that cannot connect at start exits: not this test
            await worker_id_of(conn, worker.pid)
        await wait_for(conn, "select count(*) >= 50 from fault_runs", what="under load", log=log)
        for _ in range(2):
            before = await conn.fetchval("select count(*) from fault_runs")
            await conn.close()
            await restart_postgres(data, user)
            conn = await connect_retrying(url)
            await wait_for(conn, "select count(*) > $1 from fault_runs", before,
                           what="work resumed after the restart", log=log)
        await wait_for(
            conn, "select count(*) = 0 from graphile_worker._private_jobs"
            " where attempts < max_attempts or locked_at is not null",
            timeout=90, what="every job settled", log=log,
        )
        left = await conn.fetch(
            "select id, attempts, max_attempts, last_error from graphile_worker._private_jobs"
        )
        runs = await runs_by_job(conn)
        assert {row["id"] for row in left} == set(fail)
        assert all("boom" in row["last_error"] for row in left)
        assert all(job in runs for job in ok)
        assert all(len(runs[job]) >= 2 for job in fail)
        exited = [worker.proc.returncode for worker in workers]
        assert exited == [None] * len(workers), log.read_text()[-4000:]
    finally:
        for worker in workers:
            await worker.stop()
        if not conn.is_closed():
            await conn.close()


SOAK_JOBS = int(os.environ.get("GW_SOAK_JOBS", "2000"))
SOAK_WORKERS = int(os.environ.get("GW_SOAK_WORKERS", "3"))
SOAK_KILLS = int(os.environ.get("GW_SOAK_KILLS", str(max(4, SOAK_JOBS // 500))))
SOAK_MAX_SLEEP = float(os.environ.get("GW_SOAK_MAX_SLEEP", "0.2"))
SOAK_KILL_GAP = tuple(float(x) for x in os.environ.get("GW_SOAK_KILL_GAP", "0.5,3").split(","))
UNSETTLED = (
    "select count(*) from graphile_worker._private_jobs"
    " where attempts < max_attempts or locked_at is not null"
)


async def add_soak_jobs(
    conn: asyncpg.Connection, rng: random.Random
) -> tuple[list[int], set[int]]:
    """SOAK_JOBS jobs, a random quarter of them failing (twice, then permanently)."""
    failing = set(rng.sample(range(SOAK_JOBS), SOAK_JOBS // 4))
    specs = [
        ('{"fail": true}', 2) if n in failing
        else (f'{{"sleep": {rng.uniform(0, SOAK_MAX_SLEEP):.3f}}}', 25)
        for n in range(SOAK_JOBS)
    ]
    ids: list[int] = []
    for start in range(0, SOAK_JOBS, 1000):
        chunk = specs[start:start + 1000]
        rows = await conn.fetch(
            "select (graphile_worker.add_job('record', p::json, max_attempts => m)).id"
            " from unnest($1::text[], $2::int[]) with ordinality as s(p, m, n) order by n",
            [p for p, _ in chunk], [m for _, m in chunk],
        )
        ids.extend(row["id"] for row in rows)
    return ids, {ids[n] for n in failing}


async def seconds_until_released(pool: asyncpg.Pool, worker_id: str, since: float) -> float:
    """Seconds from ``since`` (monotonic) until no job is locked by ``worker_id`` (swept)."""
    async with pool.acquire() as conn:
        await wait_for(
            conn, "select not exists (select 1 from graphile_worker._private_jobs"
            " where locked_by = $1)", worker_id, timeout=RECOVERY_BOUND,
            what=f"jobs of killed worker {worker_id} released",
        )
    return time.monotonic() - since


@pytest.mark.slow
@pytest.mark.timeout(max(120, SOAK_JOBS // 10))
async def test_soak_random_kills_every_job_accounted_for(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    """GW_SOAK_JOBS, GW_SOAK_WORKERS, GW_SOAK_KILLS, GW_SOAK_KILL_GAP (seconds "min,max"),
    GW_SOAK_MAX_SLEEP and GW_SOAK_SEED scale it (see docs/reliability.md)."""
    rng = random.Random(int(os.environ.get("GW_SOAK_SEED", "6")))
    tasks = write_tasks(tmp_path)
    log = tmp_path / "workers.log"
    ids, fail_ids = await add_soak_jobs(fconn, rng)
    workers = [await GwProcess.start(db_url, tasks, log, "-j", "8") for _ in range(SOAK_WORKERS)]
    # (worker id, database time of the kill, jobs it held)
    kills: list[tuple[str, object, list[int]]] = []
    started = time.monotonic()
    monitor_pool = await asyncpg.create_pool(db_url, min_size=1, max_size=SOAK_KILLS + 1)
    releases: list[asyncio.Task[float]] = []
    try:
        while len(kills) < SOAK_KILLS and await fconn.fetchval(UNSETTLED) > 8 * SOAK_WORKERS:
            await asyncio.sleep(rng.uniform(*SOAK_KILL_GAP))  # a random moment to pull the plug
            alive = [w for w in workers if w.proc.returncode is None]
            victim = rng.choice(alive)
            victim_id = await worker_id_of(fconn, victim.pid)
            held = await fconn.fetch(
                "select id from graphile_worker._private_jobs where locked_by = $1", victim_id
            )
            await victim.kill()
            releases.append(asyncio.create_task(
                seconds_until_released(monitor_pool, victim_id, time.monotonic())
            ))
            kill_time = await fconn.fetchval("select clock_timestamp()")
            kills.append((victim_id, kill_time, [row["id"] for row in held]))
            workers.append(await GwProcess.start(db_url, tasks, log, "-j", "8"))
        await wait_for(
            fconn, f"select ({UNSETTLED}) = 0",
            timeout=max(90, SOAK_JOBS / 20), what="every job settled", log=log,
        )
        elapsed = time.monotonic() - started
        released = await asyncio.gather(*releases)
        runs = await runs_by_job(fconn)
        left = await fconn.fetch("select id, last_error from graphile_worker._private_jobs")
        # Time from a kill to the moment the last job it held started again elsewhere. Only
        # the jobs that never fail on purpose: a failing job the victim failed just before
        # the kill runs again after its retry backoff, behind the backlog, like any retry.
        recoveries = [
            await fconn.fetchval(
                "select extract(epoch from max(r.at) - $2)::float8 from ("
                " select min(at) as at from fault_runs"
                " where job_id = any($1::bigint[]) and at > $2 group by job_id) as r",
                [job_id for job_id in held_ids if job_id not in fail_ids], kill_time,
            )
            for _, kill_time, held_ids in kills
        ]
    finally:
        for task in releases:
            task.cancel()
        await asyncio.gather(*releases, return_exceptions=True)
        await monitor_pool.close()
        await asyncio.gather(*(worker.stop() for worker in workers))

    assert kills, "the jobs were done before any worker could be killed"
    killed_ids = {victim_id for victim_id, _, _ in kills}
    # Accounting: completed jobs are gone, failing ones are permanently failed with their
    # error, or (when a kill cut their last attempt short: a dead worker's run uses its
    # attempt) with the sweep's.
    assert {row["id"] for row in left} == fail_ids
    for row in left:
        died = "died while running this job (recovered by sweep at" in row["last_error"]
        assert "boom" in row["last_error"] or (
            died and any(w in killed_ids for w in runs[row["id"]])
        ), (row["id"], row["last_error"], runs[row["id"]])
    assert set(runs) == set(ids), "a job never ran"
    duplicates = 0
    for job_id, by in runs.items():
        expected = 2 if job_id in fail_ids else 1
        survivors = [w for w in by if w not in killed_ids]
        # A job runs more often than expected only when a worker died during a run of it.
        assert len(survivors) <= expected, (job_id, by)
        duplicates += max(0, len(by) - expected)
    measured = [r for r in recoveries if r is not None]
    counts = Counter(len(by) for by in runs.values())
    print(
        f"soak: {SOAK_JOBS} jobs ({len(fail_ids)} failing), {SOAK_WORKERS} workers, "
        f"{len(kills)} kill -9, {duplicates} extra runs (all of runs cut by a kill), "
        f"runs per job {dict(sorted(counts.items()))}; kill -> jobs released by the sweep: "
        f"max {max(released):.2f}s mean {sum(released) / len(released):.2f}s; "
        f"kill -> last held job (never failing) started again: "
        f"max {max(measured, default=0):.2f}s mean {sum(measured) / max(len(measured), 1):.2f}s; "
        f"total {elapsed:.1f}s"
    )


async def test_no_worker_recovery_means_no_registry_row(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    tasks = write_tasks(tmp_path)
    log = tmp_path / "worker.log"
    worker = await GwProcess.start(db_url, tasks, log, "--no-worker-recovery", hold=True)
    try:
        await add_jobs(fconn, 1, '{"hold": true}')
        await wait_for(fconn, "select count(*) = 1 from fault_runs", what="job held", log=log)
        assert await fconn.fetchval("select count(*) from graphile_worker._gw_workers") == 0
    finally:
        await worker.kill()


async def test_inconsistent_recovery_settings_are_refused(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    tasks = write_tasks(tmp_path)
    log = tmp_path / "worker.log"
    worker = await GwProcess.start(
        db_url, tasks, log, "--heartbeat-interval", "10s", "--sweep-threshold", "5s"
    )
    code = await asyncio.wait_for(worker.proc.wait(), timeout=30)
    assert code == 2
    assert "sweep_threshold" in log.read_text() and "Traceback" not in log.read_text()
