"""`gw run --database-wait`: a worker started before its database waits for it (real
PostgreSQL behind a TCP relay that opens late), and gives up on errors waiting cannot cure."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.helpers.gw_process import Gw, clean_env, gw_command, write_tasks
from tests.helpers.metrics import free_port

TASK = "async def task(payload, ctx):\n    ctx.logger.info('ran %s', payload['n'])\n"


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


@contextlib.asynccontextmanager
async def relay(port: int, target: tuple[str, int]) -> AsyncIterator[None]:
    """Listen on ``port`` and pipe every connection to ``target``, until the block ends."""
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_a_worker_started_before_its_database_waits_and_then_runs(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await conn.execute("select graphile_worker.add_job('late', '{\"n\": 7}')")
    port = free_port()
    parts = urlsplit(db_url)
    target = (parts.hostname or "127.0.0.1", parts.port or 5432)
    process = await asyncio.create_subprocess_exec(
        *gw_command("run", "--once", "-c", _via(db_url, port), "--database-wait", "60s",
                    "--tasks", str(write_tasks(tmp_path, {"late.py": TASK})),
                    "--log-format", "plain"),
        cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = Gw(process)
    try:
        await gw.wait_for_line("database not reachable yet", 30)
        async with relay(port, target):  # the database "comes up"
            assert await gw.exit_code(60) == 0, gw.output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "ran 7" in gw.output
    assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 0


def _run(tmp_path: Path, *args: str) -> tuple[int, str, float]:
    import subprocess

    started = time.monotonic()
    result = subprocess.run(
        gw_command("run", "--once", "--tasks", str(write_tasks(tmp_path, {"late.py": TASK})),
                   "--log-format", "plain", *args),
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
    )
    return result.returncode, result.stderr, time.monotonic() - started


def test_the_wait_ends_with_the_connection_error(tmp_path: Path) -> None:
    url = f"postgres://postgres@127.0.0.1:{free_port()}/postgres"
    code, err, seconds = _run(tmp_path, "-c", url, "--database-wait", "2s")
    assert code == 1
    assert "database not reachable yet" in err
    assert err.strip().splitlines()[-1].startswith(
        f"error: could not connect to {url}: server unreachable"
    )
    assert 2.0 <= seconds < 30, seconds


@pytest.mark.parametrize("wrong", ["database", "user"])
def test_errors_waiting_cannot_cure_are_not_waited_for(
    db_url: str, tmp_path: Path, wrong: str
) -> None:
    parts = urlsplit(db_url)
    if wrong == "database":
        url = urlunsplit(parts._replace(path="/gw_no_such_database"))
    else:
        url = urlunsplit(parts._replace(netloc=f"gw_no_such_role@{parts.hostname}:{parts.port}"))
    code, err, seconds = _run(tmp_path, "-c", url, "--database-wait", "60s")
    assert code == 1
    assert "database not reachable yet" not in err
    assert err.strip().splitlines()[-1].startswith("error: could not connect to")
    assert seconds < 30, seconds


async def test_sigterm_while_waiting_stops_at_once(tmp_path: Path) -> None:
    import signal

    url = f"postgres://postgres@127.0.0.1:{free_port()}/postgres"
    process = await asyncio.create_subprocess_exec(
        *gw_command("run", "-c", url, "--database-wait", "10m",
                    "--tasks", str(write_tasks(tmp_path, {"late.py": TASK})),
                    "--log-format", "plain"),
        cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = Gw(process)
    try:
        await gw.wait_for_line("database not reachable yet", 30)
        gw.signal(signal.SIGTERM)
        assert await gw.exit_code(15) == 0, gw.output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "received SIGTERM during start-up: stopped before running any job" in gw.output


async def test_gw_migrate_waits_too(empty_db_url: str, tmp_path: Path) -> None:
    """An init container running `gw migrate` before PostgreSQL is up."""
    port = free_port()
    parts = urlsplit(empty_db_url)
    target = (parts.hostname or "127.0.0.1", parts.port or 5432)
    process = await asyncio.create_subprocess_exec(
        *gw_command("migrate", "-c", _via(empty_db_url, port), "--database-wait", "60s"),
        cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = Gw(process)
    try:
        await gw.wait_for_line("gw migrate: database not reachable yet", 30)
        async with relay(port, target):
            assert await gw.exit_code(60) == 0, gw.output
            assert process.stdout is not None
            out = (await process.stdout.read()).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "is at migration 20 (applied 20 now)" in out
