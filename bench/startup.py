"""``python -m bench startup``: how long a ``gw`` command takes from exec to exit, against
psql doing the same insert and the reference's ``graphile-worker --once`` on the same empty
queue. Each command runs ``--runs`` times (after one unmeasured warm-up run); the median
wall time is reported, with the ratios the goals are stated in.

Needs PostgreSQL (``GW_BENCH_DATABASE_URL``, default ``postgres://postgres@127.0.0.1/postgres``:
a fresh database is created and dropped), ``psql`` on the PATH, and for the reference
``npm ci --prefix tests/interop``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import databases

REPO = Path(__file__).resolve().parent.parent
GW = str(Path(sys.executable).with_name("gw"))
REFERENCE = REPO / "tests" / "interop" / "node_modules" / ".bin" / "graphile-worker"
PER_RUN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Measure:
    name: str
    argv: list[str]


def _median_seconds(argv: list[str], runs: int, env: dict[str, str], cwd: Path) -> float:
    def once() -> float:
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=PER_RUN_TIMEOUT)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
        return elapsed

    once()  # warm the page cache and the interpreter's bytecode
    return statistics.median(once() for _ in range(runs))


def _measures(url: str, have_reference: bool) -> list[Measure]:
    measures = [
        Measure("psql add_job", ["psql", url, "-qAtc", "select graphile_worker.add_job('x')"]),
        Measure("gw add-job", [GW, "add-job", "x"]),
        Measure("gw --version", [GW, "--version"]),
        Measure("gw --help", [GW, "--help"]),
        Measure("gw run --once", [GW, "run", "--once", "--tasks", "tasks"]),
    ]
    if have_reference:
        measures.append(Measure("reference --once", [str(REFERENCE), "--once"]))
    return measures


def _report(figures: dict[str, float], runs: int) -> str:
    lines = [f"median of {runs} runs, wall time from exec to exit", ""]
    lines += [f"{name:<18} {seconds * 1000:7.0f} ms" for name, seconds in figures.items()]
    lines.append("")
    psql = figures["psql add_job"]
    lines.append(f"gw add-job / psql           {figures['gw add-job'] / psql:5.2f}x  (goal <= 4)")
    lines.append(f"gw --version / psql         {figures['gw --version'] / psql:5.2f}x")
    lines.append(f"gw --help / psql            {figures['gw --help'] / psql:5.2f}x")
    if "reference --once" in figures:
        ratio = figures["gw run --once"] / figures["reference --once"]
        lines.append(f"gw run --once / reference   {ratio:5.2f}x  (goal <= 1)")
    return "\n".join(lines)


def _compile_package() -> None:
    """Write gw's bytecode as an installed wheel has it: an editable install under
    PYTHONDONTWRITEBYTECODE would otherwise compile every module on every start."""
    import compileall

    compileall.compile_dir(str(REPO / "graphile_worker_cli"), quiet=1)


async def _run(runs: int) -> str:
    _compile_package()
    dbs = databases.Databases(databases.admin_url())
    try:
        url = await dbs.create("startup")
        await databases.migrate_with_gw(url)
        have_reference = REFERENCE.exists() and shutil.which("node") is not None
        with tempfile.TemporaryDirectory(prefix="gw-startup-") as folder:
            cwd = Path(folder)
            # One task on each side, so that both workers start for real; the queue stays
            # empty for --once (the add-job runs queue "x" jobs, which neither side fetches
            # first: they are deleted before the worker measures).
            (cwd / "tasks").mkdir()
            (cwd / "tasks" / "noop.py").write_text("async def task(payload, ctx):\n    pass\n")
            (cwd / "tasks" / "noop.js").write_text("module.exports = async () => {};\n")
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("GW_")},
                "DATABASE_URL": url, "PGCONNECT_TIMEOUT": "10",
            }
            figures: dict[str, float] = {}
            for measure in _measures(url, have_reference):
                if measure.name == "gw run --once":
                    await _empty_queue(url)
                figures[measure.name] = _median_seconds(measure.argv, runs, env, cwd)
        return _report(figures, runs)
    finally:
        await dbs.close()


async def _empty_queue(url: str) -> None:
    conn = await databases.connect(url)
    try:
        await conn.execute("delete from graphile_worker._private_jobs")
    finally:
        await conn.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="measured runs per command")
    args = parser.parse_args(argv)
    print(asyncio.run(_run(args.runs)))
    return 0
