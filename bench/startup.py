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
import resource
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


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    """User plus system CPU seconds of the process and its children: on a machine others
    load, far steadier than the wall time (which also counts waiting for a core)."""


def _sample(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=PER_RUN_TIMEOUT)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(elapsed, cpu)


def _gw_measures(gw: str, label: str) -> list[Measure]:
    return [
        Measure(f"{label} add-job", [gw, "add-job", "x"]),
        Measure(f"{label} --version", [gw, "--version"]),
        Measure(f"{label} --help", [gw, "--help"]),
        Measure(f"{label} run --once", [gw, "run", "--once", "--tasks", "tasks"]),
    ]


def _measures(url: str, have_reference: bool, gw: str, other: str | None) -> list[Measure]:
    measures = [
        Measure("psql add_job", ["psql", url, "-qAtc", "select graphile_worker.add_job('x')"]),
        *_gw_measures(gw, "gw"),
    ]
    if other is not None:
        measures += _gw_measures(other, "other")
    if have_reference:
        measures.append(Measure("reference --once", [str(REFERENCE), "--once"]))
    return measures


def _report(figures: dict[str, Sample], runs: int) -> str:
    lines = [f"median of {runs} runs: wall time from exec to exit, and CPU time (user + system)",
             ""]
    lines += [f"{name:<20} {figure.wall * 1000:7.0f} ms  cpu {figure.cpu * 1000:6.0f} ms"
              for name, figure in figures.items()]
    lines.append("")
    psql = figures["psql add_job"]
    for label in ("gw", "other"):
        if f"{label} add-job" not in figures:
            continue
        for command, goal in (("add-job", "  (goal <= 4)"), ("--version", ""), ("--help", "")):
            figure = figures[f"{label} {command}"]
            lines.append(
                f"{label + ' ' + command + ' / psql':<30} {figure.wall / psql.wall:5.2f}x"
                f"  cpu {figure.cpu / psql.cpu:5.2f}x{goal}"
            )
        if "reference --once" in figures:
            gw, reference = figures[f"{label} run --once"], figures["reference --once"]
            lines.append(
                f"{label + ' run --once / reference':<30} {gw.wall / reference.wall:5.2f}x"
                f"  cpu {gw.cpu / reference.cpu:5.2f}x  (goal <= 1)"
            )
    return "\n".join(lines)


async def _run(runs: int, gw: str, other: str | None) -> str:
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
            measures = _measures(url, have_reference, gw, other)
            samples: dict[str, list[Sample]] = {measure.name: [] for measure in measures}
            # Round robin, after one unmeasured warm-up round: a change in the machine's
            # load (it may be shared) then touches every command alike.
            for round_number in range(runs + 1):
                for measure in measures:
                    if measure.name.endswith("run --once"):
                        await _empty_queue(url)
                    sample = _sample(measure.argv, env, cwd)
                    if round_number > 0:
                        samples[measure.name].append(sample)
        figures = {
            name: Sample(statistics.median(s.wall for s in values),
                         statistics.median(s.cpu for s in values))
            for name, values in samples.items()
        }
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
    parser.add_argument("--other", help="another gw executable measured in the same rounds "
                        "(its rows are labelled other): a before/after under the same load")
    args = parser.parse_args(argv)
    print(asyncio.run(_run(args.runs, args.gw, args.other)))
    return 0
