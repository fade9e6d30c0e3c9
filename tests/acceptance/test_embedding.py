"""The embedding recipes of docs/integrations.md, run as written in real processes: the
FastAPI lifespan under uvicorn, and the plain script (also with ``processes = 2``). A job
is queued and runs; SIGTERM stops the process cleanly; a job running at the stop finishes
within the grace period, or is handed back after it with its attempt not used up."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.doc_recipes import INTEGRATIONS, write_recipes
from tests.helpers.gw_process import Gw, clean_env
from tests.helpers.waiting import resolved, wait_until

S = "graphile_worker"

SLOW_RECEIPT = """
import asyncio


async def task(payload, ctx):
    await asyncio.sleep(float(payload["seconds"]))
    await ctx.query(
        "update orders set receipt_sent = true where id = $1", payload["order_id"]
    )
"""


@pytest.fixture
async def recipes(db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> Path:
    """The recipes in a folder (plus a slow task), their table and two orders created."""
    folder = write_recipes(INTEGRATIONS, tmp_path / "recipes")
    (folder / "tasks" / "slow_receipt.py").write_text(SLOW_RECEIPT)
    await conn.execute((folder / "schema.sql").read_text())
    await conn.execute("insert into orders (note) values ('first'), ('second')")
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _http(method: str, url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except OSError as error:
        return 0, str(error)


async def _receipt_sent(conn: asyncpg.Connection, order_id: int) -> bool:
    return bool(await conn.fetchval("select receipt_sent from orders where id = $1", order_id))


async def _job_count(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(f"select count(*) from {S}._private_jobs")
    return count


async def _running(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(
        f"select count(*) from {S}._private_jobs where locked_at is not null"
    ))


async def _queue_slow(conn: asyncpg.Connection, order_id: int, seconds: float) -> None:
    await conn.execute(
        f"select {S}.add_job('slow_receipt', $1::json)",
        json.dumps({"order_id": order_id, "seconds": seconds}),
    )


async def _spawn(folder: Path, *args: str, **env: str) -> Gw:
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=folder, env=clean_env(**env),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    return Gw(process)


async def test_fastapi_lifespan_runs_jobs_and_finishes_the_running_one_on_shutdown(
    db_url: str, recipes: Path, conn: asyncpg.Connection
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = await _spawn(
        recipes, "-m", "uvicorn", "fastapi_worker:app", "--host", "127.0.0.1",
        "--port", str(port), DATABASE_URL=db_url,
    )
    try:
        await wait_until(
            lambda: _answers(f"{base}/openapi.json"), 30, lambda: server.output
        )
        status, body = await asyncio.to_thread(_http, "POST", f"{base}/orders/1/receipt")
        assert status == 202, body
        assert isinstance(json.loads(body)["job"], int)
        await wait_until(lambda: _receipt_sent(conn, 1), 20, lambda: server.output)
        await _queue_slow(conn, 2, 1.0)
        await wait_until(lambda: _running(conn), 20, lambda: server.output)
        server.signal(signal.SIGTERM)
        # uvicorn re-raises the signal once shut down (recent versions): either is clean
        assert await server.exit_code(30) in (0, -signal.SIGTERM), server.output
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()
    assert "Application shutdown complete" in server.output
    assert await _receipt_sent(conn, 2)  # the running job finished before the app stopped
    assert await _job_count(conn) == 0
    assert "Traceback" not in server.output


async def _answers(url: str) -> bool:
    status, _ = await asyncio.to_thread(_http, "GET", url)
    return status == 200


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_script_runs_jobs_and_hands_back_the_running_one_on_sigterm(
    processes: str, db_url: str, recipes: Path, conn: asyncpg.Connection
) -> None:
    await conn.execute(f"select {S}.add_job('send_receipt', '{{\"order_id\": 1}}')")
    script = await _spawn(
        recipes, "worker_script.py", DATABASE_URL=db_url, GW_PROCESSES=processes,
        GW_SHUTDOWN_GRACE_PERIOD="0.3s",
    )
    try:
        await wait_until(lambda: _receipt_sent(conn, 1), 30, lambda: script.output)
        await wait_until(  # every worker process running, none still starting
            lambda: resolved(script.output.count("started:") == int(processes)), 30,
            lambda: script.output,
        )
        await _queue_slow(conn, 2, 3600)
        await wait_until(lambda: _running(conn), 20, lambda: script.output)
        script.signal(signal.SIGTERM)
        assert await script.exit_code(30) == 0, script.output
    finally:
        if script.process.returncode is None:
            script.process.kill()
            await script.process.wait()
    [job] = await conn.fetch(f"select attempts, locked_at from {S}._private_jobs")
    assert job["locked_at"] is None  # handed back at once
    assert job["attempts"] == 0  # the interrupted attempt is not used up
    assert not await _receipt_sent(conn, 2)
    assert "Traceback" not in script.output


async def test_async_runner_supervises_worker_processes_and_stops_them(
    db_url: str, recipes: Path, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphile_worker_cli import Runner

    monkeypatch.chdir(recipes)
    for name in ("DATABASE_URL", "GW_PROCESSES", "GW_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    await conn.execute(
        f"select {S}.add_job('send_receipt', json_build_object('order_id', n))"
        " from generate_series(1, 2) n"
    )
    async with Runner(database_url=db_url, tasks="tasks", processes=2) as runner:
        assert runner.supervises
        await wait_until(lambda: _receipt_sent(conn, 2), 30)
        await wait_until(lambda: _receipt_sent(conn, 1), 30)
        # two worker processes, each registered for recovery
        await wait_until(lambda: _workers_registered(conn, 2), 30)
        code = await asyncio.wait_for(runner.stop(), 30)
    assert code == 0
    assert await conn.fetchval(f"select count(*) from {S}._gw_workers") == 0


async def _workers_registered(conn: asyncpg.Connection, count: int) -> bool:
    return bool(await conn.fetchval(f"select count(*) from {S}._gw_workers") == count)


async def test_blocking_run_once_drains_the_queue_and_returns_0(
    db_url: str, recipes: Path, conn: asyncpg.Connection
) -> None:
    (recipes / "drain.py").write_text(
        "from graphile_worker_cli import run\n\n"
        "raise SystemExit(run(tasks='tasks', once=True))\n"
    )
    await conn.execute(
        f"select {S}.add_job('send_receipt', json_build_object('order_id', n))"
        " from generate_series(1, 2) n"
    )
    script = await _spawn(recipes, "drain.py", DATABASE_URL=db_url)
    assert await script.exit_code(60) == 0, script.output
    assert await _receipt_sent(conn, 1) and await _receipt_sent(conn, 2)
    assert await _job_count(conn) == 0


async def test_blocking_run_raises_the_gw_run_error_for_bad_input(
    db_url: str, recipes: Path
) -> None:
    (recipes / "bad.py").write_text(
        "from graphile_worker_cli import run\n"
        "from graphile_worker_cli.errors import GraphileWorkerError\n\n"
        "try:\n"
        "    run(tasks='no_such_dir')\n"
        "except GraphileWorkerError as error:\n"
        "    print(error.exit_code, error.message)\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "bad.py", cwd=recipes, env=clean_env(DATABASE_URL=db_url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith("2 tasks directory no_such_dir does not exist")
