"""Cron exactly once across a mixed fleet: three gw schedulers and the Node reference.

The reference's clock cannot be mocked, so the overlap comes from backfill: the crontab
item is known with a last execution two hours ago and ``fill=1d``, so every scheduler, gw
and reference alike, wants the same 120 minutes at once. A transaction holds the item's
known_crontabs row until all four are blocked on their first claim, then lets them race.
"""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from graphile_worker_cli import db
from graphile_worker_cli.cron import MockClock, parse_crontab_file
from graphile_worker_cli.cron.matcher import floor_minute
from graphile_worker_cli.cron.scheduler import format_ts, run_scheduler
from tests.interop import reference

pytestmark = pytest.mark.interop

SCHEMA = "graphile_worker"
CRONTAB = "* * * * * cron_interop_task ?id=shared_tick&fill=1d {origin: 'crontab', n: 1}\n"


async def wait_for(conn: asyncpg.Connection, sql: str, expected: object, what: str) -> None:
    """Poll a query until it returns ``expected`` (bounded: 30 s)."""
    deadline = asyncio.get_running_loop().time() + 30
    value = None
    while asyncio.get_running_loop().time() < deadline:
        value = await conn.fetchval(sql)
        if value == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: last value {value!r}")


async def test_gw_schedulers_and_reference_schedule_each_minute_exactly_once(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "crontab"
    path.write_text(CRONTAB)
    (tmp_path / "tasks").mkdir()
    items = parse_crontab_file(path)
    started = datetime.now(UTC)
    last = floor_minute(started) - timedelta(hours=2)
    await conn.execute(
        "insert into graphile_worker._private_known_crontabs values ('shared_tick', $1, $2)",
        started - timedelta(days=2), last,
    )
    blocker = await asyncpg.connect(db_url)
    hold = blocker.transaction()
    await hold.start()
    await blocker.execute(
        "select 1 from graphile_worker._private_known_crontabs "
        "where identifier = 'shared_tick' for update"
    )
    clock = MockClock(datetime.now(UTC))  # gw's schedulers see this moment, frozen
    proc = await reference.start_reference(db_url, "--crontab", str(path), cwd=tmp_path)
    pools = [await db.create_pool(db_url, min_size=1, max_size=2) for _ in range(3)]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_scheduler(pool, SCHEMA, items, stop=stop, clock=clock))
        for pool in pools
    ]
    try:
        # Everyone (3 gw + the reference) is blocked on claiming the first minute.
        await wait_for(
            conn,
            "select count(*) from pg_stat_activity where datname = current_database() "
            "and wait_event_type = 'Lock'",
            4,
            "four schedulers blocked on the known_crontabs row",
        )
        await hold.rollback()
        await clock.wait_for_sleepers(3, timeout=60)  # gw's three finished their backfill
        await wait_for(
            conn,
            "select last_execution >= date_trunc('minute', now()) - interval '1 minute' "
            "from graphile_worker._private_known_crontabs where identifier = 'shared_tick'",
            True,
            "the backfill to reach the present",
        )
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        for pool in pools:
            await pool.close()
        await blocker.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), 30)
    rows = await conn.fetch(
        "select p.payload, p.run_at from graphile_worker._private_jobs p "
        "join graphile_worker._private_tasks t on t.id = p.task_id "
        "where t.identifier = 'cron_interop_task' order by p.run_at"
    )
    assert rows, output.decode()
    stamps = [json.loads(row["payload"])["_cron"]["ts"] for row in rows]
    assert len(stamps) == len(set(stamps)), "a minute was scheduled twice"
    expected = [format_ts(last + timedelta(minutes=i)) for i in range(1, len(rows) + 1)]
    assert stamps == expected  # every minute since the last execution, in order, no gaps
    assert len(rows) >= 120
    assert rows[-1]["run_at"] >= floor_minute(clock.now())
    for row, ts in zip(rows, stamps, strict=True):
        payload = json.loads(row["payload"])
        # Past gw's frozen minute only the reference schedules (a live tick if a minute
        # boundary passed during the test); up to it, everything is backfill.
        backfilled = payload["_cron"]["backfilled"] if row["run_at"] > clock.now() else True
        assert payload == {
            "origin": "crontab", "n": 1, "_cron": {"ts": ts, "backfilled": backfilled},
        }
        assert format_ts(row["run_at"]) == ts
