"""The adversarial stall of issue 12: do blocked event loops get live workers swept?

    .venv/bin/python -m bench.stall [--seconds 90] [--block 12] [--jobs 2]

Two ``gw run`` processes (``-j 2``, heartbeat 1 s, sweep every 1 s, threshold 3 s) share a
fresh database; ``--jobs`` jobs each call ``time.sleep(--block)`` inside an ``async def``
task, blocking their worker's event loop. After ``--seconds`` it prints one line: how many
runs started, how many returned, how many jobs completed, and how many sweeps happened.
Every job running once and completing is the right answer. It creates a database
``gwbench_<run>_...`` and drops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import databases

TASK = '''
import time


async def task(payload, ctx):
    await ctx.query("insert into public.stall_runs (job_id, event) values ($1, 'start')",
                    ctx.job_id)
    time.sleep(float(payload["block"]))
    await ctx.query("insert into public.stall_runs (job_id, event) values ($1, 'return')",
                    ctx.job_id)
'''
FLAGS = ["-j", "2", "--heartbeat-interval", "1s", "--sweep-interval", "1s",
         "--sweep-threshold", "3s", "--log-format", "plain"]


async def measure(seconds: float, block: float, jobs: int) -> str:
    dbs = databases.Databases(databases.admin_url())
    try:
        async with dbs.fresh("gw", "stall") as url:
            conn = await databases.connect(url)
            try:
                await conn.execute("create table public.stall_runs (job_id bigint, event text)")
                with tempfile.TemporaryDirectory(prefix="gw-stall-") as root:
                    tasks = Path(root) / "tasks"
                    tasks.mkdir()
                    (tasks / "block.py").write_text(TASK)
                    log = Path(root) / "workers.log"
                    env = {k: v for k, v in os.environ.items() if not k.startswith("GW_")}
                    procs: list[asyncio.subprocess.Process] = []
                    try:
                        with log.open("ab") as out:
                            for _ in range(2):
                                procs.append(await asyncio.create_subprocess_exec(
                                    sys.executable, "-m", "graphile_worker_cli", "run", "-c",
                                    url, "--tasks", str(tasks), *FLAGS, stdout=out,
                                    stderr=asyncio.subprocess.STDOUT, env=env, cwd=root,
                                ))
                        await asyncio.sleep(3)  # both registered
                        await conn.execute(
                            "select graphile_worker.add_job('block',"
                            " json_build_object('block', $1::float8))"
                            " from generate_series(1, $2::int)", block, jobs,
                        )
                        await asyncio.sleep(seconds)
                        starts = await conn.fetchval(
                            "select count(*) from stall_runs where event = 'start'")
                        returns = await conn.fetchval(
                            "select count(*) from stall_runs where event = 'return'")
                        left = await conn.fetchval(
                            "select count(*) from graphile_worker._private_jobs")
                        attempts = await conn.fetchval(
                            "select coalesce(max(attempts), 0)"
                            " from graphile_worker._private_jobs")
                    finally:
                        await _stop(procs)
                    text = log.read_text()
                    sweeps = text.count("swept ")
                    stalls = text.count("event loop of worker")
            finally:
                await conn.close()
    finally:
        await dbs.close()
    return (
        f"stall: {jobs} jobs blocking the loop {block:g}s, 2 workers -j 2, {seconds:g}s: "
        f"{starts} runs, {returns} returns, {jobs - left} completed, {left} left "
        f"(max attempts {attempts}), {sweeps} sweep(s) of a worker, {stalls} stall warning(s)"
    )


async def _stop(procs: list[asyncio.subprocess.Process]) -> None:
    """SIGTERM every worker still running, SIGKILL the ones that do not exit in time."""
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--block", type=float, default=12.0)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(asyncio.run(measure(args.seconds, args.block, args.jobs)))


if __name__ == "__main__":
    main()
