"""Real ``gw run`` processes for the fault tests: a task that records every run, starting,
killing (SIGKILL) and stopping workers, and waiting on the database with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import asyncpg

# Every run inserts (job id, worker id, attempt) before doing anything else, so a run that
# was killed mid-way is still on record. Payload: {"hold": true} sleeps for ten minutes in a
# worker started with FAULT_HOLD=1; {"fail": true} raises; {"sleep": s} sleeps s seconds.
RECORD_TASK = '''
import asyncio
import os
from typing import Any

from graphile_worker_cli.context import WorkerContext


async def task(payload: Any, ctx: WorkerContext) -> None:
    await ctx.query(
        "insert into public.fault_runs (job_id, worker_id, attempt) values ($1, $2, $3)",
        ctx.job_id, ctx.worker_id, ctx.attempts,
    )
    payload = payload if isinstance(payload, dict) else {}
    if payload.get("hold") and os.environ.get("FAULT_HOLD") == "1":
        await asyncio.sleep(600)
    if payload.get("sleep"):
        await asyncio.sleep(float(payload["sleep"]))
    if payload.get("fail"):
        raise RuntimeError("boom: this job fails on purpose")
'''

RUNS_TABLE = """
create table if not exists public.fault_runs (
  job_id bigint not null,
  worker_id text not null,
  attempt int not null,
  at timestamptz not null default clock_timestamp()
)"""

# Small numbers so a test sees recovery in seconds.
HEARTBEAT = 0.5
SWEEP_INTERVAL = 1.0
THRESHOLD = 3.0
RECOVERY_DELAY = 0.0
AFTER_TWO_THRESHOLDS = "select now() > $1::timestamptz + 2 * $2::float8 * interval '1 second'"
RECOVERY_FLAGS = [
    "--heartbeat-interval", f"{HEARTBEAT}s",
    "--sweep-interval", f"{SWEEP_INTERVAL}s",
    "--sweep-threshold", f"{THRESHOLD}s",
    "--recovery-delay", f"{RECOVERY_DELAY}s",
    "--poll-interval", "500ms",
]


def write_tasks(directory: Path) -> Path:
    tasks = directory / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    (tasks / "record.py").write_text(RECORD_TASK)
    return tasks


class GwProcess:
    """One ``gw run`` process, its output in a log file."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @classmethod
    async def start(
        cls, url: str, tasks: Path, log: Path, *args: str, hold: bool = False
    ) -> GwProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GW_")}
        env.pop("DATABASE_URL", None)
        env["FAULT_HOLD"] = "1" if hold else "0"
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "graphile_worker_cli", "run", "-c", url,
                "--tasks", str(tasks), "--log-format", "plain", *RECOVERY_FLAGS, *args,
                stdout=out, stderr=asyncio.subprocess.STDOUT, env=env, cwd=tasks.parent,
            )
        return cls(proc, log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def kill(self) -> None:
        """kill -9: no chance to return jobs or deregister."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                await self.kill()
        assert self.proc.returncode is not None
        return self.proc.returncode


async def wait_for(
    conn: asyncpg.Connection, sql: str, *args: object, timeout: float = 30.0,
    what: str = "condition", log: Path | None = None,
) -> float:
    """Poll until ``sql`` returns true; the seconds it took. Fails with the log on timeout."""
    started = time.monotonic()
    while not await conn.fetchval(sql, *args):
        if time.monotonic() - started > timeout:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(f"{what}: not reached within {timeout}s\n{tail}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def worker_id_of(conn: asyncpg.Connection, pid: int, timeout: float = 30.0) -> str:
    """The registered id of the ``gw run`` process ``pid`` (waits for it to register)."""
    query = "select id from graphile_worker._gw_workers where pid = $1"
    await wait_for(conn, f"select exists ({query})", pid, timeout=timeout,
                   what=f"process {pid} registered")
    worker_id: str = await conn.fetchval(query, pid)
    return worker_id
