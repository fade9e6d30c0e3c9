"""The one benchmark command: gw against the reference, same run, same machine.

    .venv/bin/python -m bench [--quick] [--jobs N] [--concurrency N] [--json PATH]
    .venv/bin/python bench/run.py ...        (the same)

It builds its own databases on GW_BENCH_DATABASE_URL's server (default the local
127.0.0.1:5432), drops them at the end, prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console

from bench import databases, measures, profiles, sides
from bench.report import Figure, Row, print_table, write_json

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
console = Console(stderr=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check")
    parser.add_argument("--jobs", type=int, help="jobs drained and enqueued per measurement")
    parser.add_argument(
        "--backlog-jobs", type=int,
        help="jobs in the large-backlog tuned drain (full mode: 200,000; 0 skips it)",
    )
    parser.add_argument("--latency-samples", type=int, help="jobs timed for latency")
    parser.add_argument("--concurrency", type=int, default=profiles.DEFAULT_CONCURRENCY)
    parser.add_argument("--repeats", type=int, help="best of N for the cheap measurements")
    parser.add_argument(
        "--drain-repeats", type=int, help="best of N drains per side (sides alternate)"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument(
        "--only", help="comma-separated row keys (drain_defaults, drain_tuned,"
        " drain_tuned_backlog, drain_tuned_history, latency_defaults,"
        " latency_tuned, enqueue, enqueue_psycopg, once_empty, idle_rss, processes)",
    )
    args = parser.parse_args(argv)
    for name in ("jobs", "latency_samples", "concurrency", "repeats", "drain_repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.backlog_jobs is not None and args.backlog_jobs < 0:
        parser.error(f"--backlog-jobs must be 0 or more, got {args.backlog_jobs}")
    return args


def sizes_from(args: argparse.Namespace) -> profiles.Sizes:
    sizes = profiles.QUICK if args.quick else profiles.FULL
    if args.jobs:
        sizes = replace(sizes, drain_jobs=args.jobs, enqueue_jobs=args.jobs)
    if args.backlog_jobs is not None:
        sizes = replace(sizes, backlog_jobs=args.backlog_jobs)
    if args.latency_samples:
        sizes = replace(sizes, latency_samples=args.latency_samples)
    if args.repeats:
        sizes = replace(sizes, repeats=args.repeats)
    if args.drain_repeats:
        sizes = replace(sizes, drain_repeats=args.drain_repeats)
    return sizes


Measure = Callable[[], Awaitable[list[Row]]]


def plan(ctx: measures.Context, gw: sides.GwSide, ref: sides.ReferenceSide) -> dict[str, Measure]:
    """Every row group by key, in the order they run."""
    n = ctx.sizes.drain_jobs

    def drain_rows(profile: str, jobs: int = n, key_suffix: str = "") -> Measure:
        async def go() -> list[Row]:
            if jobs <= 0:
                return []
            reference, mine = Figure.missing("not run"), Figure.missing("not run")
            for _ in range(ctx.sizes.drain_repeats):
                reference = _best(reference, await measures.drain(ctx, ref, profile, jobs=jobs))
                mine = _best(mine, await measures.drain(ctx, gw, profile, jobs=jobs))
            title = f"drain {jobs:,} no-op jobs, {profile}"
            rows = [Row(f"drain_{profile}{key_suffix}", title, "jobs/s", "higher", mine,
                        reference)]
            if profile == "tuned":
                bound = await measures.database_bound(ctx, jobs)
                rows.append(Row(
                    f"drain_{profile}{key_suffix}_bound",
                    f"  the database alone, {jobs:,} jobs (no worker, no start-up)",
                    "jobs/s", "higher", bound, reference,
                ))
            return rows
        return go

    async def drain_history() -> list[Row]:
        # Both sides are gw, tuned; the sides alternate so machine noise hits both alike.
        # Who goes first alternates too, so neither side always follows the other.
        on, off = Figure.missing("not run"), Figure.missing("not run")
        for repeat in range(ctx.sizes.drain_repeats):
            for history_on in (False, True) if repeat % 2 == 0 else (True, False):
                if history_on:
                    on = _best(on, await measures.drain(
                        ctx, gw, "tuned", extra=profiles.HISTORY_FLAGS, label="hist_on",
                        history=True,
                    ))
                else:
                    off = _best(off, await measures.drain(ctx, gw, "tuned", label="hist_off"))
        title = f"drain {n:,} no-op jobs, tuned, job history on"
        # The database's part alone (fetch and completion statements, no worker process),
        # where the history's cost is not drowned in start-up and handler noise.
        bound_on, bound_off = Figure.missing("not run"), Figure.missing("not run")
        for repeat in range(ctx.sizes.drain_repeats):
            for history_on in (False, True) if repeat % 2 == 0 else (True, False):
                if history_on:
                    bound_on = _best(bound_on, await measures.database_bound(ctx, n, history=True))
                else:
                    bound_off = _best(bound_off, await measures.database_bound(ctx, n))
        return [
            Row("drain_tuned_history", title, "jobs/s", "higher", on, off, "history off"),
            Row("drain_tuned_history_bound",
                f"  the database alone, {n:,} jobs, history on (no worker, no start-up)",
                "jobs/s", "higher", bound_on, bound_off, "history off"),
        ]

    def latency_rows(profile: str) -> Measure:
        async def go() -> list[Row]:
            figures = await measures.latency(ctx, profile, ref, gw)
            ref50, ref99 = figures[ref.name]
            gw50, gw99 = figures[gw.name]
            title = f"add_job → handler start, {profile}"
            return [
                Row(f"latency_p50_{profile}", f"{title}, p50", "ms", "lower", gw50, ref50),
                Row(f"latency_p99_{profile}", f"{title}, p99", "ms", "lower", gw99, ref99),
            ]
        return go

    def limited_rows(profile: str) -> Measure:
        """gw's drain with the task limited to one slot less than the concurrency (every
        fetch then goes through the per-task limits), against the same drain without."""
        async def go() -> list[Row]:
            limit = max(1, ctx.concurrency - 1)
            flag = profiles.TASK_LIMIT_FLAG
            title = f"drain {n:,} no-op jobs, {profile}, task limited to {limit} slots"
            if gw.unavailable or flag not in gw.flags:
                note = gw.unavailable or f"n/a: `gw run` has no {flag} yet"
                return [Row(f"drain_limited_{profile}", title, "jobs/s", "higher",
                            Figure.missing(note), Figure.missing(note), "no limit")]
            plain, limited = Figure.missing("not run"), Figure.missing("not run")
            for _ in range(ctx.sizes.drain_repeats):  # alternate, so noise hits both alike
                plain = _best(plain, await measures.drain(ctx, gw, profile, jobs=n))
                limited = _best(limited, await measures.drain(
                    ctx, gw, profile, jobs=n, extra=(flag, f"bench_noop={limit}"),
                    label="limited",
                ))
            return [Row(f"drain_limited_{profile}", title, "jobs/s", "higher", limited, plain,
                        "no limit")]
        return go

    async def enqueue() -> list[Row]:
        bare, utils = Figure.missing("not run"), Figure.missing("not run")
        for _ in range(ctx.sizes.repeats):  # alternate, so noise hits both alike
            bare = _best(bare, await measures.enqueue_bare(ctx))
            utils = _best(utils, await measures.enqueue_utils(ctx))
        size = ctx.sizes
        title = f"bulk enqueue {size.enqueue_jobs:,} jobs, batches of {size.enqueue_batch}"
        return [Row("enqueue", title, "jobs/s", "higher", utils, bare, "SQL add_jobs")]

    async def enqueue_psycopg() -> list[Row]:
        from bench import enqueue_psycopg as driver_row

        mine, bare = Figure.missing("not run"), Figure.missing("not run")
        for _ in range(ctx.sizes.repeats):  # each run alternates the sides batch by batch
            ran_mine, ran_bare = await driver_row.enqueue_psycopg(ctx)
            mine, bare = _best(mine, ran_mine), _best(bare, ran_bare)
        size = ctx.sizes
        title = (f"bulk enqueue {size.enqueue_jobs:,} jobs on a psycopg connection, "
                 f"batches of {size.enqueue_batch}")
        return [Row("enqueue_psycopg", title, "jobs/s", "higher", mine, bare,
                    "SQL add_jobs, same conn")]

    async def once_empty() -> list[Row]:
        reference = await measures.once_empty(ctx, ref)
        mine = await measures.once_empty(ctx, gw)
        title = "--once on an empty queue, start to exit"
        return [Row("once_empty", title, "s", "lower", mine, reference)]

    async def idle_rss() -> list[Row]:
        reference = await measures.idle_rss(ctx, ref)
        mine = await measures.idle_rss(ctx, gw)
        return [Row("idle_rss", "idle worker RSS (process tree)", "MiB", "lower",
                    _mib(mine), _mib(reference))]

    async def processes() -> list[Row]:
        title = f"CPU-bound jobs ({ctx.sizes.cpu_jobs:,}), --processes 2"
        if gw.unavailable or profiles.PROCESSES_FLAG not in gw.flags:
            note = gw.unavailable or f"n/a: `gw run` has no {profiles.PROCESSES_FLAG} yet"
            return [Row("processes", title, "jobs/s", "higher", Figure.missing(note),
                        Figure.missing(note), "--processes 1")]
        payload = f"json_build_object('loops', {ctx.sizes.cpu_loops})"
        runs = {1: Figure.missing("not run"), 2: Figure.missing("not run")}
        for _ in range(ctx.sizes.drain_repeats):
            for count in (1, 2):
                runs[count] = _best(runs[count], await measures.drain(
                    ctx, gw, "defaults", identifier="bench_cpu", jobs=ctx.sizes.cpu_jobs,
                    payload_sql=payload, extra=(profiles.PROCESSES_FLAG, str(count)),
                    label=f"cpu{count}",
                ))
        return [Row("processes", title, "jobs/s", "higher", runs[2], runs[1], "--processes 1")]

    return {
        "drain_defaults": drain_rows("defaults"),
        "drain_tuned": drain_rows("tuned"),
        # The same race on a backlog four times bigger: how each side's fetch copes with a
        # large queue on a table autovacuum has not analyzed yet (a burst of inserts).
        "drain_tuned_backlog": drain_rows("tuned", ctx.sizes.backlog_jobs, "_backlog"),
        "drain_limited_defaults": limited_rows("defaults"),
        "drain_limited_tuned": limited_rows("tuned"),
        # What job history (a record per job, written by the completing statement) costs.
        "drain_tuned_history": drain_history,
        "latency_defaults": latency_rows("defaults"),
        "latency_tuned": latency_rows("tuned"),
        "enqueue": enqueue,
        "enqueue_psycopg": enqueue_psycopg,
        "once_empty": once_empty,
        "idle_rss": idle_rss,
        "processes": processes,
    }


def _add_rate_after_startup(rows: list[Row]) -> None:
    """Drain rates with each side's `--once` start-up time taken out (JSON detail only)."""
    startup = next((row for row in rows if row.key == "once_empty"), None)
    if startup is None:
        return
    for row in rows:
        if not row.key.startswith("drain_") or row.key.endswith("_bound"):
            continue  # a bound has no process to start
        baseline_startup = startup.baseline if row.baseline_label == "reference" else startup.gw
        for figure, empty in ((row.gw, startup.gw), (row.baseline, baseline_startup)):
            seconds = figure.detail.get("seconds")
            if figure.value is None or empty.value is None or not seconds:
                continue
            net = seconds - empty.value
            if net > 0:
                figure.detail["jobs_per_s_after_startup"] = figure.detail["jobs"] / net


def _best(old: Figure, new: Figure) -> Figure:
    """The higher of two throughput figures; any failed run wins, so none goes unseen."""
    if old.value is None and old.note != "not run":
        return old
    if new.value is None or old.value is None:
        return new
    return new if new.value > old.value else old


def _mib(figure: Figure) -> Figure:
    if figure.value is None:
        return figure
    return replace(figure, value=figure.value / 1024)


def _version(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        return result.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


async def run(args: argparse.Namespace) -> int:
    sizes = sizes_from(args)
    only = set(args.only.split(",")) if args.only else None
    dbs = databases.Databases(databases.admin_url())
    started = time.monotonic()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="gwbench-") as tmp:
        gw = sides.GwSide(Path(tmp))
        ref = sides.ReferenceSide(Path(tmp))
        await asyncio.to_thread(gw.detect)
        await asyncio.to_thread(ref.detect)
        ctx = measures.Context(dbs, sizes, args.concurrency)
        rows: list[Row] = []
        try:
            for key, measure in plan(ctx, gw, ref).items():
                if only is not None and not any(key.startswith(k) for k in only):
                    continue
                console.log(f"measuring {key} ...")
                rows.extend(await measure())
        finally:
            await dbs.close()
    _add_rate_after_startup(rows)
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *(sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "run_id": dbs.run_id,
        "concurrency": args.concurrency,
        "sizes": asdict(sizes),
        "profiles": {"gw": profiles.GW_PROFILES, "reference": profiles.REFERENCE_PROFILES},
        "gw_missing_flags": {p: gw.profile_args(p)[1] for p in profiles.PROFILES},
        "gw_unavailable": gw.unavailable,
        "machine": {
            "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "node": _version(["node", "--version"]),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    title = f"gw vs graphile-worker 0.18.0 — {meta['mode']}, concurrency {args.concurrency}"
    print_table(rows, Console(width=max(140, Console().width)), title)
    write_json(args.json, rows, meta)
    console.log(f"wrote {args.json} in {meta['seconds']} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loop = asyncio.new_event_loop()
    task = loop.create_task(run(args))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        console.log("interrupted; databases dropped")
        return 130
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


if __name__ == "__main__":
    raise SystemExit(main())
