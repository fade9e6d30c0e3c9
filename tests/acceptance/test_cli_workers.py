"""``gw workers list|check|sweep|force-unlock`` as a user runs them: a real process, a real
database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from graphile_worker_cli import recovery
from tests.helpers.gw_process import gw
from tests.helpers.recovery import SCHEMA, add_locked_job, age_heartbeat, ensure_registry


@pytest.fixture
async def rconn(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    await ensure_registry(conn)
    await recovery.register_worker(conn, SCHEMA, "gw-alive", heartbeat_interval=1, tasks=["a"])
    await recovery.register_worker(conn, SCHEMA, "gw-dead", heartbeat_interval=1)
    await add_locked_job(conn, "gw-dead", queue="q1")
    await add_locked_job(conn, "gw-alive")
    await add_locked_job(conn, "pool-abc")
    await age_heartbeat(conn, "gw-dead", "10 minutes")
    yield conn


async def locked_by(conn: asyncpg.Connection) -> list[str | None]:
    rows = await conn.fetch("select locked_by from graphile_worker._private_jobs order by id")
    return [row["locked_by"] for row in rows]


async def test_list_json(rconn: asyncpg.Connection, db_url: str) -> None:
    result = await gw("workers", "list", "-c", db_url, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    workers = {w["id"]: w for w in data["workers"]}
    assert set(workers) == {"gw-alive", "gw-dead"}
    assert (workers["gw-dead"]["stale"], workers["gw-dead"]["jobs_held"]) == (True, 1)
    assert (workers["gw-alive"]["stale"], workers["gw-alive"]["tasks"]) == (False, ["a"])
    assert [h["id"] for h in data["unregistered_lock_holders"]] == ["pool-abc"]


async def test_list_table(rconn: asyncpg.Connection, db_url: str) -> None:
    result = await gw("workers", "list", "-c", db_url)
    assert result.code == 0, result.err
    assert "gw-alive" in result.out and "gw-dead" in result.out
    assert "stale" in result.out and "pool-abc" in result.out


async def test_sweep_dry_run_then_sweep(rconn: asyncpg.Connection, db_url: str) -> None:
    dry = await gw("workers", "sweep", "-c", db_url, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert json.loads(dry.out)["worker_ids"] == ["gw-dead"]
    assert await locked_by(rconn) == ["gw-dead", "gw-alive", "pool-abc"]

    done = await gw("workers", "sweep", "-c", db_url, "--threshold", "5m", "--recovery-delay", "0")
    assert done.code == 0, done.err
    assert "recovered 1 job(s) and 1 queue(s) from 1 dead worker(s): gw-dead" in done.out
    assert await locked_by(rconn) == [None, "gw-alive", "pool-abc"]


async def test_sweep_threshold_longer_than_the_silence_sweeps_nothing(
    rconn: asyncpg.Connection, db_url: str
) -> None:
    result = await gw("workers", "sweep", "-c", db_url, "--threshold", "1h")
    assert result.code == 0, result.err
    assert "no dead workers" in result.out
    assert await locked_by(rconn) == ["gw-dead", "gw-alive", "pool-abc"]


async def test_bad_duration_is_one_line_and_exit_2(rconn: asyncpg.Connection, db_url: str) -> None:
    result = await gw("workers", "sweep", "-c", db_url, "--threshold", "soon")
    assert result.code == 2
    assert "soon" in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


async def test_force_unlock(rconn: asyncpg.Connection, db_url: str) -> None:
    result = await gw("workers", "force-unlock", "-c", db_url, "gw-dead", "pool-abc")
    assert result.code == 0, result.err
    assert "unlocked 2 job(s)" in result.out
    assert await locked_by(rconn) == [None, "gw-alive", None]
    queue = await rconn.fetchval(
        "select locked_by from graphile_worker._private_job_queues where queue_name = 'q1'"
    )
    assert queue is None


async def test_force_unlock_refuses_a_live_worker(rconn: asyncpg.Connection, db_url: str) -> None:
    refused = await gw("workers", "force-unlock", "-c", db_url, "gw-alive")
    assert refused.code == 2 and "gw-alive" in refused.err and "--force" in refused.err
    assert await locked_by(rconn) == ["gw-dead", "gw-alive", "pool-abc"]
    forced = await gw("workers", "force-unlock", "-c", db_url, "gw-alive", "--force")
    assert forced.code == 0, forced.err
    assert await locked_by(rconn) == ["gw-dead", None, "pool-abc"]


async def test_unmigrated_schema_is_a_clear_error(rconn: asyncpg.Connection, db_url: str) -> None:
    result = await gw("workers", "list", "-c", db_url, "--schema", "nope")
    assert result.code == 2
    assert "nope" in result.err and "Traceback" not in result.err


async def test_check_is_a_probe_for_this_hosts_workers(
    rconn: asyncpg.Connection, db_url: str
) -> None:
    import socket

    host = socket.gethostname()
    pid = await rconn.fetchval("select pid from graphile_worker._gw_workers where id = 'gw-alive'")
    ok = await gw("workers", "check", "-c", db_url)
    assert ok.code == 0, ok.err
    assert ok.out.startswith(f"ok: 1 gw worker(s) of host {host}, last heartbeat")
    assert (await gw("workers", "check", "-c", db_url, "--pid", str(pid))).code == 0

    other_pid = await gw("workers", "check", "-c", db_url, "--pid", str(pid + 1))
    assert other_pid.code == 1
    elsewhere = await gw("workers", "check", "-c", db_url, "--host", "no-such-host")
    assert (elsewhere.code, elsewhere.out) == (1, "")
    assert elsewhere.err.strip() == (
        "error: no gw worker of host no-such-host heartbeated within 30s (none registered)"
    )

    await age_heartbeat(rconn, "gw-alive", "2 minutes")
    silent = await gw("workers", "check", "-c", db_url)
    assert silent.code == 1
    assert f"no gw worker of host {host} heartbeated within 30s (last heartbeat" in silent.err
    assert len(silent.err.strip().splitlines()) == 1
    lenient = await gw("workers", "check", "-c", db_url, "--max-age", "5m")
    assert lenient.code == 0, lenient.err

    bad = await gw("workers", "check", "-c", db_url, "--max-age", "soon")
    assert bad.code == 2 and "option --max-age" in bad.err
