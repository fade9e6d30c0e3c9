"""``gw run`` loads plugins named in worker.toml and serves --metrics-port (real processes)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from tests.helpers.gw_process import (
    QUICK_TASK,
    Gw,
    add_job,
    clean_env,
    gw_command,
    started_count,
    write_tasks,
)
from tests.helpers.metrics import free_port, sample, scrape
from tests.helpers.waiting import wait_until

S = "graphile_worker"

PLUGIN = """
import json
import pathlib

from graphile_worker_cli import hooks

OUT = pathlib.Path(__file__).with_name("events.jsonl")


class Recorder:
    def register(self, registry):
        for event in (hooks.WorkerStart, hooks.JobStart, hooks.JobComplete,
                      hooks.WorkerShutdown):
            registry.on(event, self.record(event.__name__))
        registry.on(hooks.BeforeJobRun, self.skip_flagged)

    def record(self, name):
        def handler(ctx):
            job = getattr(ctx, "job", None)
            with OUT.open("a") as out:
                out.write(json.dumps([name, job.id if job else None]) + "\\n")
        return handler

    def skip_flagged(self, ctx):
        if ctx.payload.get("skip"):
            return hooks.HookResult.SKIP
        return None
"""


async def test_a_plugin_named_in_worker_toml_is_loaded_by_gw_run(
    db_url: str, started_table: asyncpg.Connection, tmp_path: Path
) -> None:
    conn = started_table
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    (tmp_path / "myplugins.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "worker.toml").write_text(
        f'database_url = "{db_url}"\ntasks = "{tasks_dir}"\nplugins = ["myplugins:Recorder"]\n'
    )
    ran = await add_job(conn, "quick", "{}")
    skipped = await add_job(conn, "quick", '{"skip": true}')
    result = await asyncio.to_thread(
        subprocess.run, gw_command("run", "--once", "--config", "worker.toml"),
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert lines[0] == ["WorkerStart", None] and lines[-1] == ["WorkerShutdown", None]
    assert ["JobStart", ran] in lines and ["JobComplete", ran] in lines
    assert ["JobComplete", skipped] in lines and ["JobStart", skipped] not in lines
    assert await started_count(conn) == 1
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0


async def test_a_bad_plugin_path_is_a_one_line_error(db_url: str, tmp_path: Path) -> None:
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    env = clean_env(GW_PLUGINS='["no_such_module_gw:Plugin"]')
    result = await asyncio.to_thread(
        subprocess.run, gw_command("run", "--once", "-c", db_url, "--tasks", str(tasks_dir)),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot load plugin 'no_such_module_gw:Plugin'" in lines[0]
    assert "Traceback" not in result.stderr


async def test_gw_run_metrics_port_serves_the_counts(
    db_url: str, started_table: asyncpg.Connection, tmp_path: Path,
    start_gw: Callable[..., Awaitable[Gw]],
) -> None:
    conn = started_table
    tasks_dir = write_tasks(tmp_path, {"quick.py": QUICK_TASK})
    for _ in range(4):
        await add_job(conn, "quick", "{}")
    port = free_port()
    gw = await start_gw("-c", db_url, "--tasks", str(tasks_dir), "--metrics-port", str(port))

    async def all_counted() -> bool:
        try:
            text = await asyncio.to_thread(scrape, port)
        except OSError:
            return False
        return sample(text, "gw_jobs_completed_total", task="quick") == 4

    await wait_until(all_counted, 30, lambda: gw.output)
    text = await asyncio.to_thread(scrape, port)
    assert sample(text, "gw_jobs_started_total", task="quick") == 4
    assert sample(text, "gw_job_run_duration_seconds_count", task="quick",
                  outcome="complete") == 4
    gw.signal(signal.SIGTERM)
    assert await gw.exit_code() == 0, gw.output
