"""The acceptance tier: gw as the user runs it, in real processes (``gw``, ``python -m
graphile_worker_cli``, ``manage.py``), with real signals, exit codes and faults, on a real
PostgreSQL. Fixtures shared by the ``gw run`` tests live here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.gw_process import Gw, clean_env, gw_command


@pytest.fixture
async def start_gw(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Gw]]]:
    started: list[Gw] = []

    async def start(*args: str, env: dict[str, str] | None = None) -> Gw:
        process = await asyncio.create_subprocess_exec(
            *gw_command("run", *args), cwd=tmp_path, env=env or clean_env(),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        gw = Gw(process)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        if gw.process.returncode is None:
            gw.process.kill()
            await gw.process.wait()


@pytest.fixture
async def started_table(conn: asyncpg.Connection) -> asyncpg.Connection:
    await conn.execute("create table started (job_id bigint primary key)")
    return conn
