from __future__ import annotations

import asyncpg


async def test_each_test_gets_a_migrated_database(conn: asyncpg.Connection) -> None:
    count = await conn.fetchval("select count(*) from graphile_worker.migrations")
    assert count == 20
    assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 0
