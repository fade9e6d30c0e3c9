"""Memory of one long-running worker over many jobs: does anything grow?

    .venv/bin/python -m bench.memory [--rounds 6] [--jobs 40000] [--plugins]

One ``Worker.run()`` in this process (local queue 500, concurrency 24). Each round queues
``--jobs`` jobs (a tenth of them failing permanently), waits until none is runnable, and
prints the process's resident memory and the sizes of the worker's own bookkeeping, which
must be empty between rounds. ``--plugins`` adds a JobStart hook and the metrics plugin
(without an HTTP port). It creates a database ``gwbench_memory_<random>`` and drops it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import databases
from graphile_worker_cli import db, hooks
from graphile_worker_cli.worker import WorkerOptions

ADD_JOBS = (
    "select count(*) from graphile_worker.add_jobs(array("
    " select row('memory', json_build_object('fail', i % 10 = 0), null, null, 1, null, null,"
    " null)::graphile_worker.job_spec from generate_series(1, $1::int) as i))"
)
RUNNABLE = "select count(*) from graphile_worker._private_jobs where attempts < max_attempts"


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def memory_task(payload: Any) -> None:
    if payload["fail"]:
        raise ValueError("failing on purpose")


async def measure(rounds: int, jobs: int, plugins: bool) -> None:
    admin = databases.admin_url()
    name = f"gwbench_memory_{uuid.uuid4().hex[:8]}"
    conn = await databases.connect(admin)
    try:
        await conn.execute(f"create database {db.escape_identifier(name)}")
    finally:
        await conn.close()
    url = databases.with_database(admin, name)
    try:
        options = WorkerOptions(
            database_url=url, concurrency=24, local_queue_size=500,
            listen_os_shutdown_signals=False,
        ).define_job(memory_task, "memory")
        if plugins:
            from graphile_worker_cli.observability.metrics import MetricsPlugin

            options.add_plugin(MetricsPlugin(port=None))
            options.on(hooks.JobStart, lambda ctx: None)
        worker = await options.init()
        running = asyncio.create_task(worker.run())
        conn = await databases.connect(url)
        try:
            for number in range(1, rounds + 1):
                await conn.fetchval(ADD_JOBS, jobs)
                while await conn.fetchval(RUNNABLE):
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.5)  # the last outcomes land
                gc.collect()
                print(
                    f"round {number}: {worker.jobs_run:,} jobs run, resident "
                    f"{resident_mib():.1f} MiB; running {len(worker.slots.running)}, unsettled "
                    f"serial {worker.slots.serial_unsettled()}, hook emissions "
                    f"{worker.events.pending()}, pending writes "
                    f"{worker.settler.pending_writes()}",
                    flush=True,
                )
                await conn.execute("delete from graphile_worker._private_jobs")
        finally:
            await conn.close()
            worker.request_shutdown("measurement over")
            await running
    finally:
        conn = await databases.connect(admin)
        try:
            await conn.execute(f"drop database if exists {db.escape_identifier(name)} with (force)")
        finally:
            await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--plugins", action="store_true")
    args = parser.parse_args()
    if args.rounds < 1 or args.jobs < 1:
        parser.error("--rounds and --jobs must be at least 1")
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # the failing jobs would log 10% of a round
    try:
        import uvloop
    except ImportError:
        asyncio.run(measure(args.rounds, args.jobs, args.plugins))
    else:
        uvloop.run(measure(args.rounds, args.jobs, args.plugins))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
