"""``python -m bench startup``: how long a ``gw`` command takes from exec to exit, against
psql doing the same insert and the reference's ``graphile-worker --once`` on the same empty
queue. The commands run in turn, ``--runs`` rounds after one unmeasured warm-up round; the
median wall time of each is reported, with the ratios the goals are stated in.

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


def _seconds(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=PER_RUN_TIMEOUT)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return elapsed


def _measures(url: str, have_reference: bool, gw: str) -> list[Measure]:
    measures = [
        Measure("psql add_job", ["psql", url, "-qAtc", "select graphile_worker.add_job('x')"]),
        Measure("gw add-job", [gw, "add-job", "x"]),
        Measure("gw --version", [gw, "--version"]),
        Measure("gw --help", [gw, "--help"]),
        Measure("gw run --once", [gw, "run", "--once", "--tasks", "tasks"]),
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


async def _run(runs: int, gw: str) -> str:
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
            # Bytecode goes to a folder of the run's own (the warm-up run writes it), as an
            # installed wheel has it, even when PYTHONDONTWRITEBYTECODE is set here; nothing
            # is written into the checkout being measured.
            env = {
                **{k: v for k, v in os.environ.items()
                   if not k.startswith("GW_") and k != "PYTHONDONTWRITEBYTECODE"},
                "DATABASE_URL": url, "PGCONNECT_TIMEOUT": "10",
                "PYTHONPYCACHEPREFIX": str(cwd / "pycache"),
            }
            measures = _measures(url, have_reference, gw)
            samples: dict[str, list[float]] = {measure.name: [] for measure in measures}
            # Round robin, after one unmeasured warm-up round: a change in the machine's
            # load (it may be shared) then touches every command alike.
            for round_number in range(runs + 1):
                for measure in measures:
                    if measure.name == "gw run --once":
                        await _empty_queue(url)
                    seconds = _seconds(measure.argv, env, cwd)
                    if round_number > 0:
                        samples[measure.name].append(seconds)
        figures = {name: statistics.median(values) for name, values in samples.items()}
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
    parser.add_argument("--gw", default=GW, help="the gw executable to measure (default: "
                        "this environment's), e.g. another checkout's, to compare builds")
    args = parser.parse_args(argv)
    print(asyncio.run(_run(args.runs, args.gw)))
    return 0
