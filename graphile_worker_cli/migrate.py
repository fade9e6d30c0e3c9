"""SKELETON — the migrations owner replaces this. Temporarily migrates with the reference."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

_REFERENCE = Path(__file__).parent.parent / "tests/interop/node_modules/graphile-worker/dist/cli.js"


async def migrate(conn: asyncpg.Connection, schema: str = "graphile_worker") -> None:
    params = conn.get_settings()
    del params
    addr = conn._addr  # noqa: SLF001
    db = conn._params.database  # noqa: SLF001
    user = conn._params.user  # noqa: SLF001
    url = f"postgres://{user}@{addr[0]}:{addr[1]}/{db}"
    proc = await asyncio.create_subprocess_exec(
        "node", str(_REFERENCE), "-c", url, "--schema-only",
        env={"GRAPHILE_WORKER_SCHEMA": schema, "PATH": "/usr/bin:/usr/local/bin"},
    )
    assert await proc.wait() == 0
