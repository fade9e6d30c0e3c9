"""A cron job's payload text is the same whoever schedules the minute: one crontab line,
backfilled by the reference on one schema and by gw's scheduler on another."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from graphile_worker_cli import db
from graphile_worker_cli.cron import parse_crontab_file
from graphile_worker_cli.cron.matcher import floor_minute
from graphile_worker_cli.cron.scheduler import run_scheduler
from tests.helpers import reference
from tests.helpers.side_by_side import GW_SCHEMA, NODE_SCHEMA

pytestmark = pytest.mark.interop

CRONTAB = (
    "* * * * * payload_task ?id=payload_item&fill=3m "
    "{s: 'é ✓ \\u2028', n: 1e-5, f: 1.0, k: {b: 1, '2': 2, a: [0.1, -0, 2.5e-7]}, "
    "big: 12345678901234567890, e: 1E21}\n"
)
TEXTS = (
    "select p.run_at, p.payload::text as payload from {schema}._private_jobs p "
    "join {schema}._private_tasks t on t.id = p.task_id where t.identifier = 'payload_task'"
)


async def texts(conn: asyncpg.Connection, schema: str) -> dict[datetime, str]:
    return {row["run_at"]: row["payload"] for row in await conn.fetch(TEXTS.format(schema=schema))}


async def test_cron_payload_text_is_the_references(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    crontab = tmp_path / "crontab"
    crontab.write_text(CRONTAB)
    (tmp_path / "tasks").mkdir()
    migrated = await asyncio.to_thread(
        reference.run_reference, db_url, "--schema-only", schema=NODE_SCHEMA, cwd=tmp_path
    )
    assert migrated.returncode == 0, migrated.stderr
    last = floor_minute(datetime.now(UTC)) - timedelta(minutes=3)
    for schema in (GW_SCHEMA, NODE_SCHEMA):
        await conn.execute(
            f"insert into {schema}._private_known_crontabs values ('payload_item', $1, $2)",
            last - timedelta(days=1), last,
        )
    node = await reference.start_reference(
        db_url, "--crontab", str(crontab), schema=NODE_SCHEMA, cwd=tmp_path
    )
    pool = await db.create_pool(db_url, min_size=1, max_size=2)
    stop = asyncio.Event()
    scheduler = asyncio.create_task(
        run_scheduler(pool, GW_SCHEMA, parse_crontab_file(crontab), stop=stop)
    )
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len(await texts(conn, GW_SCHEMA)) < 2 or len(await texts(conn, NODE_SCHEMA)) < 2:
            assert asyncio.get_running_loop().time() < deadline, "backfill did not happen"
            assert node.returncode is None and not scheduler.done()
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(scheduler, 10)
        await pool.close()
        if node.returncode is None:
            node.send_signal(signal.SIGTERM)
        await asyncio.wait_for(node.communicate(), 30)
    mine, theirs = await texts(conn, GW_SCHEMA), await texts(conn, NODE_SCHEMA)
    shared = sorted(mine.keys() & theirs.keys())
    assert len(shared) >= 2
    for run_at in shared:
        assert mine[run_at] == theirs[run_at]
    first = mine[shared[0]]
    assert first.startswith(
        '{"s":"é ✓ \u2028","n":0.00001,"f":1,"k":{"2":2,"b":1,"a":[0.1,0,2.5e-7]},'
        '"big":12345678901234567000,"e":1e+21,"_cron":{"ts":"'
    )
