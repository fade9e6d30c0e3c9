"""``gw`` as a subprocess: its command line, a clean environment, task files, the output of
a running ``gw run``, and the ``started`` table its test tasks write to."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.helpers.waiting import resolved, wait_until

S = "graphile_worker"

QUICK_TASK = """
async def task(payload, ctx):
    await ctx.query("insert into started (job_id) values ($1)", ctx.job_id)
"""


def gw_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "graphile_worker_cli", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GW_") and k not in ("DATABASE_URL", "GRAPHILE_WORKER_SCHEMA")}
    env.update(extra)
    return env


def env_without_database(**extra: str) -> dict[str, str]:
    """This environment without what could name a database to gw or libpq (``GW_*``,
    ``PG*``, ``DATABASE_URL``), plus ``extra``."""
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("GW_", "PG")) and name != "DATABASE_URL"
    }
    env.update(extra)
    return env


def write_tasks(root: Path, files: dict[str, str]) -> Path:
    tasks_dir = root / "tasks"
    for name, text in files.items():
        path = tasks_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tasks_dir


class Gw:
    """A running ``gw run`` whose stderr is collected line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        assert process.stderr is not None
        self._reader = asyncio.create_task(self._read(process.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, fragment: str, timeout: float = 20.0) -> None:
        await wait_until(lambda: resolved(any(fragment in line for line in self.lines)), timeout,
                         lambda: f"no line with {fragment!r} in:\n{self.output}")

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def exit_code(self, timeout: float = 30.0) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await self._reader
        return code


async def started_count(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("select count(*) from started")
    return count


async def add_job(conn: asyncpg.Connection, identifier: str, payload: str, **kw: str) -> int:
    """Add a job whose payload is JSON text; ``kw`` are ``add_job`` options, as text."""
    extra = "".join(f", {key} := '{value}'" for key, value in kw.items())
    job_id: int = await conn.fetchval(
        f"select id from {S}.add_job($1, $2::json{extra})", identifier, payload
    )
    return job_id


@dataclass
class Result:
    code: int
    out: str
    err: str


async def gw(*args: str, cwd: Path | None = None) -> Result:
    """Run ``gw`` to completion with wide output; its exit code, stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["COLUMNS"] = "200"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "graphile_worker_cli", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())
