"""``python -m bench scale``: cost curves — drain rate and fetch latency of gw and the
reference against backlog size, jobs scheduled for later, named queues, and worker
processes on one database. Prints a table, writes JSON, a Markdown table and a PNG chart.

    .venv/bin/python -m bench scale [--quick] [--only GROUPS] [--profiles defaults,tuned]

See bench/README.md ("Cost curves") for what each point measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console

from bench import backlog, databases, profiles, scale_measures, scale_report, sides
from bench.report import Figure, Row, print_table, write_json

RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = ("backlog", "future", "queues", "processes")
FUTURE_DELAY_SECONDS = 30 * 24 * 3600.0
console = Console(stderr=True)


@dataclass(frozen=True)
class Point:
    """One x value of one curve: the jobs loaded before the workers start."""

    group: str
    x: int
    loads: tuple[backlog.Backlog, ...]
    ready: int  # jobs runnable at once (the rest wait for later)
    processes: int = 1

    @property
    def label(self) -> str:
        return f"{self.group}_{self.x}"


def points(sizes: profiles.ScaleSizes, groups: tuple[str, ...]) -> list[Point]:
    out: list[Point] = []
    if "backlog" in groups:
        out += [Point("backlog", n, (backlog.Backlog(n),), n) for n in sizes.backlogs]
    if "future" in groups:
        ready = backlog.Backlog(sizes.future_ready)
        later = backlog.Backlog(sizes.future_jobs, delay_seconds=FUTURE_DELAY_SECONDS)
        out.append(Point("future", 0, (ready,), sizes.future_ready))
        out.append(Point("future", sizes.future_jobs, (later, ready), sizes.future_ready))
    if "queues" in groups:
        out += [
            Point("queues", q, (backlog.Backlog(sizes.queue_jobs, queues=q),), sizes.queue_jobs)
            for q in sizes.queue_counts
        ]
    if "processes" in groups:
        jobs = sizes.process_jobs
        out += [
            Point("processes", n, (backlog.Backlog(jobs),), jobs, processes=n)
            for n in sizes.process_counts
        ]
    return out


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part.replace("_", "")) for part in text.split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers of at least 1, got {text!r}")
    return values


def _names(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(part for part in text.split(",") if part)
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown) or 'empty list'}; expected some of "
                + ", ".join(allowed)
            )
        return names
    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench scale", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke check")
    parser.add_argument("--only", type=_names(GROUPS), default=GROUPS,
                        help="comma-separated curves: " + ", ".join(GROUPS))
    parser.add_argument("--profiles", type=_names(profiles.PROFILES), default=profiles.PROFILES,
                        help="comma-separated profiles (default: defaults,tuned)")
    parser.add_argument("--backlogs", type=_ints, help="ready-job counts of the backlog curve")
    parser.add_argument("--future-jobs", type=_ints, help="jobs due later in the future curve")
    parser.add_argument("--queue-counts", type=_ints, help="named-queue counts")
    parser.add_argument("--queue-jobs", type=_ints, help="jobs of the queue curve")
    parser.add_argument("--process-counts", type=_ints, help="worker process counts")
    parser.add_argument("--process-jobs", type=_ints, help="jobs of the process curve")
    parser.add_argument("--reference-bound", type=float,
                        help="seconds a reference drain may take before it is stopped")
    parser.add_argument(
        "--drain-repeats", type=int, metavar="N",
        help="drains of each side at every point, the median kept (default, backlog and"
        " future curves: 5 up to 10,000 ready jobs, 3 up to 100,000, 1 above; other curves"
        " and --quick: 1)",
    )
    parser.add_argument("--no-reference", action="store_true", help="measure gw alone")
    parser.add_argument(
        "--vacuum-every", type=float, metavar="SECONDS",
        help="VACUUM the jobs table this often during each drain (an autovacuum stand-in)",
    )
    parser.add_argument("--concurrency", type=int, default=profiles.DEFAULT_CONCURRENCY)
    parser.add_argument("--json", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--markdown", type=Path, default=RESULTS / "scale.md")
    parser.add_argument("--chart", type=Path, default=RESULTS / "scale.png",
                        help="PNG written with matplotlib (skipped, with a note, without it)")
    parser.add_argument("--plans", type=Path, default=RESULTS / "scale-plans",
                        help="folder for each fetch's EXPLAIN (ANALYZE, BUFFERS)")
    args = parser.parse_args(argv)
    for name in ("concurrency", "drain_repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    for name in ("reference_bound", "vacuum_every"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    return args


def sizes_from(args: argparse.Namespace) -> profiles.ScaleSizes:
    sizes = profiles.SCALE_QUICK if args.quick else profiles.SCALE_FULL
    single = {"future_jobs": args.future_jobs, "queue_jobs": args.queue_jobs,
              "process_jobs": args.process_jobs}
    for name, value in single.items():
        if value is not None:
            sizes = replace(sizes, **{name: value[0]})
    lists = {"backlogs": args.backlogs, "queue_counts": args.queue_counts,
             "process_counts": args.process_counts}
    for name, values in lists.items():
        if values is not None:
            sizes = replace(sizes, **{name: values})
    if args.reference_bound is not None:
        sizes = replace(sizes, reference_bound=args.reference_bound)
    if args.drain_repeats is not None:
        sizes = replace(sizes, drain_repeats=args.drain_repeats)
    return sizes


@contextlib.asynccontextmanager
async def loaded(dbs: databases.Databases, side: str, point: Point) -> AsyncIterator[str]:
    """A database migrated by ``side`` holding the point's jobs: measurements clone it."""
    async with dbs.fresh(side, f"src_{point.label}") as url:
        conn = await databases.connect(url)
        try:
            first = 1
            for load in point.loads:
                await backlog.load(conn, load, first=first)
                first += load.jobs
        finally:
            await conn.close()
        yield url


@contextlib.asynccontextmanager
async def clone(dbs: databases.Databases, source_url: str, label: str) -> AsyncIterator[str]:
    source = urlsplit(source_url).path.lstrip("/")
    url = await dbs.create(label, template=source)
    try:
        yield url
    finally:
        await dbs.drop(url)


@dataclass
class Curve:
    """Everything measured at one point, for the table, the Markdown and the chart."""

    point: Point
    profile: str
    drain: Row
    fetch: Row | None
    load: float = 0.0  # 1-minute load average as the point started


async def measure_point(
    ctx: _Context, point: Point, pair: list[sides.Side],
) -> list[Curve]:
    curves: list[Curve] = []
    load = os.getloadavg()[0]
    async with contextlib.AsyncExitStack() as stack:
        sources = {
            side.name: await stack.enter_async_context(loaded(ctx.dbs, side.name, point))
            for side in pair
        }
        for profile in ctx.profiles:
            figures = await _drains(ctx, point, pair, profile, sources)
            curves.append(Curve(point, profile, _row(point, profile, "drain", figures), None,
                                load))
        if point.group != "processes":
            for curve in curves[-len(ctx.profiles):]:
                curve.fetch = await _fetch_row(ctx, point, curve.profile, sources)
    return curves


async def _drains(
    ctx: _Context, point: Point, pair: list[sides.Side], profile: str, sources: dict[str, str],
) -> dict[str, Figure]:
    """Each side's median drain of the point. Repeats alternate the sides (the reference
    first, then gw, each on a fresh copy of its loaded jobs), so that slow-varying noise on
    the machine hits both alike; a side whose drain failed or was bounded is not repeated."""
    repeats = profiles.drain_repeats(ctx.sizes, point.ready, point.group)
    runs: dict[str, list[Figure]] = {side.name: [] for side in pair}
    for repeat in range(1, repeats + 1):
        for side in pair:
            done = runs[side.name]
            if done and not scale_measures.repeatable(done[-1]):
                continue
            count = f" {repeat}/{repeats}" if repeats > 1 else ""
            console.log(f"  {point.label} {profile}: {side.name} drain{count}")
            async with clone(ctx.dbs, sources[side.name], f"{side.name}_{profile}") as url:
                done.append(await _drain(ctx, point, side, profile, url))
    return {name: scale_measures.median_drain(done) for name, done in runs.items()}


async def _drain(
    ctx: _Context, point: Point, side: sides.Side, profile: str, url: str
) -> Figure:
    sizes = ctx.sizes
    bound = sizes.reference_bound if side.name == "reference" else sizes.gw_bound
    if point.group == "queues":
        return await scale_measures.drain_running(
            url, side, profile, ready=point.ready, concurrency=ctx.concurrency, bound=bound,
            vacuum_every=ctx.vacuum_every,
        )
    return await scale_measures.drain(
        url, side, profile, ready=point.ready, concurrency=ctx.concurrency,
        processes=point.processes, bound=bound, vacuum_every=ctx.vacuum_every,
    )


async def _fetch_row(
    ctx: _Context, point: Point, profile: str, sources: dict[str, str]
) -> Row:
    figures: dict[str, Figure] = {}
    for side_name, source in sources.items():
        batch = profiles.FETCH_BATCH[profile][side_name]
        console.log(f"  {point.label} {profile}: {side_name} fetch (batch {batch})")
        try:
            plan = (scale_measures.gw_fetch_plan(batch) if side_name == "gw"
                    else await asyncio.to_thread(scale_measures.reference_fetch_plan, batch))
            async with clone(ctx.dbs, source, f"{side_name}_fetch") as url:
                text = await scale_measures.explain_fetch(url, plan)
                ctx.plans.mkdir(parents=True, exist_ok=True)
                (ctx.plans / f"{point.label}_{side_name}_batch{batch}.txt").write_text(text)
                # at most half the ready jobs: every sample still finds a full batch
                samples = min(ctx.sizes.fetch_samples, max(1, point.ready // batch // 2))
                figures[side_name] = await scale_measures.fetch_latency(
                    url, plan, samples=samples, budget=ctx.sizes.fetch_budget,
                )
        except (RuntimeError, OSError) as error:
            figures[side_name] = Figure.missing(str(error))
    return _row(point, profile, "fetch", figures)


def _row(point: Point, profile: str, what: str, figures: dict[str, Figure]) -> Row:
    title = scale_report.point_title(point.group, point.x, point.ready)
    missing = Figure.missing("not measured (--no-reference)")
    if what == "drain":
        return Row(f"{point.label}_{profile}", f"{title}, {profile}", "jobs/s", "higher",
                   figures.get("gw", missing), figures.get("reference", missing))
    batches = profiles.FETCH_BATCH[profile]
    return Row(
        f"fetch_{point.label}_{profile}",
        f"  fetch statement, {profile} (batch gw {batches['gw']}, ref {batches['reference']})",
        "ms", "lower", figures.get("gw", missing), figures.get("reference", missing),
    )


@dataclass(frozen=True)
class _Context:
    dbs: databases.Databases
    sizes: profiles.ScaleSizes
    profiles: tuple[str, ...]
    concurrency: int
    plans: Path
    vacuum_every: float | None


async def run(args: argparse.Namespace) -> int:
    sizes = sizes_from(args)
    dbs = databases.Databases(databases.admin_url())
    started = time.monotonic()
    load_before = os.getloadavg()
    curves: list[Curve] = []
    with tempfile.TemporaryDirectory(prefix="gwbench-scale-") as tmp:
        gw = sides.GwSide(Path(tmp))
        await asyncio.to_thread(gw.detect)
        pair: list[sides.Side] = [gw]
        if not args.no_reference:
            ref = sides.ReferenceSide(Path(tmp))
            await asyncio.to_thread(ref.detect)
            pair = [ref, gw]
        ctx = _Context(dbs, sizes, args.profiles, args.concurrency, args.plans,
                       args.vacuum_every)
        try:
            for point in points(sizes, args.only):
                console.log(f"measuring {point.label} (load average {_load()}) ...")
                curves += await measure_point(ctx, point, pair)
        finally:
            await dbs.close()
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench scale", *(sys.argv[2:])]),
        "mode": "quick" if args.quick else "full",
        "run_id": dbs.run_id,
        "concurrency": args.concurrency,
        "profiles": list(args.profiles),
        "vacuum_every": args.vacuum_every,
        "sizes": asdict(sizes),
        "machine": {
            "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    rows = [row for curve in curves for row in (curve.drain, curve.fetch) if row is not None]
    title = f"cost curves: gw vs graphile-worker 0.18.0 — {meta['mode']}, -j {args.concurrency}"
    print_table(rows, Console(width=max(140, Console().width)), title)
    meta["curves"] = [
        scale_report.curve_json(c.point.group, c.point.x, c.point.ready, c.profile, c.drain,
                                c.fetch) | {"loadavg": round(c.load, 1)}
        for c in curves
    ]
    write_json(args.json, rows, meta)
    markdown = scale_report.markdown(meta["curves"])
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown)
    print(markdown)
    for line in scale_report.spread_lines(meta["curves"]):
        print(line)
    chart_note = scale_report.write_chart(meta["curves"], args.chart, meta)
    console.log(chart_note)
    console.log(f"wrote {args.json}, {args.markdown} in {meta['seconds']} s")
    return 0


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


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
