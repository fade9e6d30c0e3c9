"""``gw run`` as a real process: real signals, real exit codes, real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.database import listening
from tests.helpers.gw_process import (
    QUICK_TASK,
    Gw,
    add_job,
    clean_env,
    gw_command,
    started_count,
    write_tasks,
)
from tests.helpers.waiting import wait_until

S = "graphile_worker"

LONG_TASK = """
import asyncio
import pathlib


async def task(payload, ctx):
    await ctx.query("insert into started (job_id) values ($1)", ctx.job_id)
    release = pathlib.Path(payload["release"])
    while not release.exists():
        await asyncio.sleep(0.02)
"""

SYNC_STUCK_TASK = """
import time


def task(payload, ctx):
    ctx.run_coroutine(ctx.query("insert into started (job_id) values ($1)", ctx.job_id))
    time.sleep(600)
"""

async def test_sigterm_lets_a_running_job_finish_within_grace(
    db_url: str, started_table: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    conn = started_table
    tasks_dir = write_tasks(tmp_path, {"long.py": LONG_TASK})
    release = tmp_path / "release"
    job_id = await add_job(conn, "long", f'{{"release": "{release}"}}')
    gw = await start_gw("-c", db_url, "--tasks", str(tasks_dir), "--shutdown-grace-period", "60s")
    await wait_until(lambda: _positive(started_count(conn)), describe=lambda: gw.output)
    gw.signal(signal.SIGTERM)
    await gw.wait_for_line("received SIGTERM")
    # Still running: the lock is held while the job waits for its release file.
    assert await conn.fetchval(
        f"select locked_by from {S}._private_jobs where id = $1", job_id
    ) is not None
    release.touch()
    assert await gw.exit_code() == 0, gw.output
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0


async def _positive(value: Awaitable[int]) -> bool:
    return await value > 0


async def test_sigterm_past_grace_aborts_and_reschedules_without_using_an_attempt(
    db_url: str, started_table: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    conn = started_table
    tasks_dir = write_tasks(tmp_path, {"long.py": LONG_TASK})
    job_id = await add_job(conn, "long", f'{{"release": "{tmp_path / "never"}"}}',
                           queue_name="serial")
    gw = await start_gw(
        "-c", db_url, "--tasks", str(tasks_dir), "--shutdown-grace-period", "300ms",
        env=clean_env(GW_SHUTDOWN_INTERRUPTED_JOB_RETRY_DELAY="1h"),
    )
    await wait_until(lambda: _positive(started_count(conn)), describe=lambda: gw.output)
    gw.signal(signal.SIGTERM)
    assert await gw.exit_code() == 0, gw.output
    row = await conn.fetchrow(f"select * from {S}._private_jobs where id = $1", job_id)
    assert (row["attempts"], row["locked_by"], row["locked_at"]) == (0, None, None)
    assert row["run_at"] > await conn.fetchval("select now() + interval '50 minutes'")
    assert await conn.fetchval(f"select locked_by from {S}._private_job_queues") is None
    assert "interrupted" in gw.output


async def test_aborted_sync_handler_does_not_keep_the_process_alive(
    db_url: str, started_table: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    conn = started_table
    tasks_dir = write_tasks(tmp_path, {"stuck.py": SYNC_STUCK_TASK})
    await add_job(conn, "stuck", "{}")
    gw = await start_gw("-c", db_url, "--tasks", str(tasks_dir), "--shutdown-grace-period", "100ms")
    await wait_until(lambda: _positive(started_count(conn)), describe=lambda: gw.output)
    gw.signal(signal.SIGTERM)
    # The handler sleeps for 10 minutes in its thread; the process must not wait for it.
    assert await gw.exit_code(timeout=30) == 0, gw.output
    assert await conn.fetchval(f"select attempts from {S}._private_jobs") == 0


async def test_second_signal_cuts_the_grace_period_short(
    db_url: str, started_table: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    conn = started_table
    tasks_dir = write_tasks(tmp_path, {"long.py": LONG_TASK})
    await add_job(conn, "long", f'{{"release": "{tmp_path / "never"}"}}')
    gw = await start_gw("-c", db_url, "--tasks", str(tasks_dir), "--shutdown-grace-period", "1h")
    await wait_until(lambda: _positive(started_count(conn)), describe=lambda: gw.output)
    gw.signal(signal.SIGINT)
    await gw.wait_for_line("received SIGINT")
    gw.signal(signal.SIGINT)
    assert await gw.exit_code() == 0, gw.output
    assert await conn.fetchval(f"select attempts from {S}._private_jobs") == 0


async def test_once_drains_the_queue_and_exits_zero(
    db_url: str, started_table: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    conn = started_table
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK, "sub/quick.py": QUICK_TASK})
    for _ in range(5):
        await add_job(conn, "quick", "{}")
        await add_job(conn, "sub/quick", "{}")
    gw = await start_gw("-c", db_url, "--tasks", str(tasks_dir), "--once", "-j", "3")
    assert await gw.exit_code() == 0, gw.output
    assert await started_count(conn) == 10
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0
    assert "2 task(s), concurrency 3, schema graphile_worker" in gw.output
    assert "worker gw-" in gw.output


async def test_breaking_migration_from_another_process_exits_57(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    gw = await start_gw("-c", db_url, "--tasks", str(tasks_dir), "--no-migrate")
    await gw.wait_for_line("started:")
    await wait_until(lambda: listening(conn), describe=lambda: gw.output)
    await conn.execute(
        """select pg_notify('worker:migrate', '{"migrationNumber": 21, "breaking": true}')"""
    )
    assert await gw.exit_code() == 57, gw.output
    assert "breaking migration 21" in gw.output


def run_gw(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gw_command("run", *args), cwd=tmp_path, env=clean_env(), capture_output=True,
        text=True, timeout=60,
    )


def test_task_file_that_fails_to_import_is_named(db_url: str, tmp_path: Path) -> None:
    tasks_dir = write_tasks(tmp_path, {"ok.py": QUICK_TASK, "broken.py": "import nowhere_x\n"})
    result = run_gw(tmp_path, "-c", db_url, "--tasks", str(tasks_dir), "--once")
    assert result.returncode == 2, result.stderr
    assert "broken.py" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_tasks_directory(db_url: str, tmp_path: Path) -> None:
    result = run_gw(tmp_path, "-c", db_url, "--tasks", str(tmp_path / "nope"), "--once")
    assert result.returncode == 2
    assert "nope" in result.stderr and "does not exist" in result.stderr


def test_no_tasks_at_all(db_url: str, tmp_path: Path) -> None:
    result = run_gw(tmp_path, "-c", db_url, "--once")
    assert result.returncode == 2
    assert "no tasks found" in result.stderr and "--tasks DIR" in result.stderr


def test_conflicting_identifiers(db_url: str, tmp_path: Path) -> None:
    tasks_dir = write_tasks(tmp_path, {"same.py": QUICK_TASK})
    (tmp_path / "mytasks.py").write_text(textwrap.dedent("""
        from graphile_worker_cli.tasks import task

        @task("same")
        async def same(payload):
            return None
    """))
    result = subprocess.run(
        gw_command("run", "-c", db_url, "--tasks", str(tasks_dir), "--tasks-module", "mytasks",
                   "--once"),
        cwd=tmp_path, env=clean_env(PYTHONPATH=str(tmp_path)), capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "same" in result.stderr and "defined twice" in result.stderr


def test_invalid_crontab_is_named(db_url: str, tmp_path: Path) -> None:
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    crontab = tmp_path / "my.crontab"
    crontab.write_text("* * * * * quick\n61 * * * * quick\n")
    result = run_gw(tmp_path, "-c", db_url, "--tasks", str(tasks_dir), "--crontab", str(crontab))
    assert result.returncode == 2, result.stderr
    assert "my.crontab" in result.stderr and "Traceback" not in result.stderr


def test_default_crontab_file_in_the_working_directory_is_loaded(
    db_url: str, tmp_path: Path
) -> None:
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    (tmp_path / "crontab").write_text("not a crontab line\n")
    result = run_gw(tmp_path, "-c", db_url, "--tasks", str(tasks_dir), "--once")
    assert result.returncode == 2, result.stderr
    assert "crontab" in result.stderr


def test_json_logs_carry_structured_job_fields(db_url: str, tmp_path: Path) -> None:
    failing = "async def task(payload):\n    raise ValueError('nope')\n"
    tasks_dir = write_tasks(tmp_path, {"fails.py": failing})
    subprocess.run(
        ["psql", db_url, "-qc", f"select {S}.add_job('fails', queue_name := 'jq')"],
        check=True, capture_output=True,
    )
    result = run_gw(tmp_path, "-c", db_url, "--tasks", str(tasks_dir), "--once",
                    "--log-format", "json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    start = next(line for line in lines if line.get("action") == "worker_start")
    assert start["worker_id"].startswith("gw-") and start["concurrency"] == 10
    fail = next(line for line in lines if line.get("action") == "fail")
    assert (fail["task"], fail["queue"], fail["attempt"], fail["error"]) == (
        "fails", "jq", 1, "ValueError: nope")


def test_quiet_hides_job_lines(db_url: str, tmp_path: Path) -> None:
    tasks_dir = write_tasks(tmp_path, {"ok.py": "async def task(payload):\n    return None\n"})
    subprocess.run(
        ["psql", db_url, "-qc", f"select {S}.add_job('ok')"], check=True, capture_output=True
    )
    result = run_gw(tmp_path, "-c", db_url, "--tasks", str(tasks_dir), "--once", "-q")
    assert result.returncode == 0, result.stderr
    assert "completed" not in result.stderr and "started:" not in result.stderr


async def test_nothing_is_imported_once_the_worker_runs(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    """An import while the worker runs blocks its event loop (a lazy import of the hook
    events in the first sweep held every job back ~15 ms). Jobs, a failure and a sweep that
    recovers a dead worker must all run on modules loaded at start-up."""
    tasks_dir = write_tasks(tmp_path, {
        "ok.py": "async def task(payload, ctx):\n    return None\n",
        "boom.py": "async def task(payload, ctx):\n    raise ValueError('boom')\n",
    })
    await conn.execute(
        "insert into graphile_worker._gw_workers (id, host, pid, version, heartbeat_interval,"
        " last_heartbeat_at) values ('gw-dead', 'h', 1, 'x', '1 second',"
        " now() - interval '1 hour')"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-m", "graphile_worker_cli", "run", "-c", db_url,
        "--tasks", str(tasks_dir), "--sweep-interval", "1s", "--sweep-threshold", "3s",
        "--heartbeat-interval", "1s",
        "--log-format", "plain",
        cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = Gw(process)
    try:
        await gw.wait_for_line("started:", 30)
        await conn.execute("select graphile_worker.add_job('ok', '{}')")
        await conn.execute("select graphile_worker.add_job('boom', '{}', max_attempts := 1)")
        await gw.wait_for_line("swept 1 dead worker(s) gw-dead", 30)
        await gw.wait_for_line("failed permanently", 30)
        gw.signal(signal.SIGTERM)
        assert await gw.exit_code(30) == 0, gw.output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    started = next(i for i, line in enumerate(gw.lines) if "started:" in line)
    late = [line for line in gw.lines[started:] if line.startswith("import time:")]
    assert late == [], "\n".join(late)


async def test_jobs_run_on_uvloop_when_it_is_installed(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    pytest.importorskip("uvloop")  # a dependency on every platform but Windows
    tasks_dir = write_tasks(tmp_path, {"which_loop.py": (
        "import asyncio\n\nasync def task(payload, ctx):\n"
        "    ctx.logger.info('loop module %s', type(asyncio.get_running_loop()).__module__)\n"
    )})
    await add_job(conn, "which_loop", "{}")
    gw = await start_gw("-c", db_url, "--tasks", str(tasks_dir), "--once")
    assert await gw.exit_code() == 0, gw.output
    assert "loop module uvloop" in gw.output
