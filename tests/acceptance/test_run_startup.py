"""``gw run`` start-up: a signal that arrives before the worker runs, and a schema that was
never migrated with ``--no-migrate``. Real processes, real signals, real PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import asyncpg

from graphile_worker_cli import migrate
from tests.helpers.gw_process import QUICK_TASK, clean_env, gw_command, write_tasks

S = "graphile_worker"


async def _wait_until_blocked_on_lock(conn: asyncpg.Connection, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        waiting = await conn.fetchval(
            "select count(*) from pg_stat_activity"
            " where wait_event_type = 'Lock' and pid <> pg_backend_pid()"
            " and datname = current_database()"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("gw run never blocked on the migration lock")


async def test_sigterm_during_start_up_stops_the_worker(
    empty_db_url: str, tmp_path: Path
) -> None:
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    holder = await asyncpg.connect(empty_db_url)
    watcher = await asyncpg.connect(empty_db_url)
    try:
        # Hold the migrator's lock so `gw run` is stuck in start-up, then signal it there.
        async with holder.transaction():
            await holder.execute("select pg_advisory_xact_lock($1)", migrate.advisory_lock_key(S))
            process = subprocess.Popen(
                gw_command("run", "-c", empty_db_url, "--tasks", str(tasks_dir),
                           "--log-format", "plain"),
                env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            try:
                loop = asyncio.get_running_loop()
                await _wait_until_blocked_on_lock(watcher, loop.time() + 30)
                process.send_signal(signal.SIGTERM)
                output, _ = await asyncio.to_thread(process.communicate, timeout=30)
            finally:
                if process.poll() is None:
                    process.kill()
        assert process.returncode == 0, output
        assert "received SIGTERM during start-up" in output
        assert "started:" not in output  # the worker never ran
    finally:
        await holder.close()
        await watcher.close()


async def test_no_migrate_on_an_unmigrated_database_is_one_line(
    empty_db_url: str, tmp_path: Path
) -> None:
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    result = await asyncio.to_thread(
        subprocess.run,
        gw_command("run", "--once", "--no-migrate", "-c", empty_db_url, "--tasks", str(tasks_dir)),
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "gw migrate" in lines[0]
