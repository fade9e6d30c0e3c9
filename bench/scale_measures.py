"""What ``python -m bench scale`` measures at each point of a curve: drains of a loaded
backlog by one side (bounded in time), and the fetch statement's own latency."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench import databases, procs, profiles, sides
from bench.report import Figure
from graphile_worker_cli import db
from tests.helpers import reference

S = db.escape_identifier(profiles.SCHEMA)
REFERENCE_FETCH_SCRIPT = Path(__file__).resolve().parent / "reference_fetch.mjs"
SCRIPT_TIMEOUT = 60.0
POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Remaining:
    runnable: int  # jobs due now that are still there
    failed: int  # jobs that failed at least once


async def remaining(url: str) -> Remaining:
    conn = await databases.connect(url)
    try:
        row = await conn.fetchrow(
            "select count(*) filter (where run_at <= now()) as runnable,"
            " count(*) filter (where last_error is not null) as failed"
            f" from {S}._private_jobs"
        )
    finally:
        await conn.close()
    if row is None:
        raise RuntimeError("count of the jobs left returned no row")
    return Remaining(int(row["runnable"]), int(row["failed"]))


# Connections a fleet of one side may open on the (shared) server: max_connections is 100.
FLEET_CONNECTIONS = 48
DEFAULT_POOL = 10  # both sides' default pool size


def pool_size(side: sides.Side, processes: int) -> int:
    """Each process's pool, so that ``processes`` of them stay within FLEET_CONNECTIONS
    (gw opens up to three connections beside its pool); the default for one or two."""
    own = 3 if isinstance(side, sides.GwSide) else 0
    return max(1, min(DEFAULT_POOL, FLEET_CONNECTIONS // processes - own))


def pool_args(side: sides.Side, processes: int) -> tuple[str, ...]:
    if isinstance(side, sides.ReferenceSide) and pool_size(side, processes) < DEFAULT_POOL:
        return ("--max-pool-size", str(pool_size(side, processes)))
    return ()


def pool_env(side: sides.Side, processes: int) -> dict[str, str]:
    if isinstance(side, sides.GwSide) and pool_size(side, processes) < DEFAULT_POOL:
        return {"GW_MAX_PG_CONN": str(pool_size(side, processes))}
    return {}


@dataclass
class Vacuums:
    """What the autovacuum stand-in did during one drain."""

    every: float | None
    seconds: list[float] = field(default_factory=list)

    def detail(self) -> dict[str, object]:
        if self.every is None:
            return {}
        return {"vacuum_every": self.every, "vacuums": len(self.seconds),
                "vacuum_seconds": round(sum(self.seconds), 3)}


@contextlib.asynccontextmanager
async def vacuuming(url: str, every: float | None) -> AsyncIterator[Vacuums]:
    """With ``every``, VACUUM the jobs table every ``every`` seconds until the block ends:
    what autovacuum would do on a server where it runs (this one's is off) and is tuned
    for a queue table. A vacuum in progress when the block ends is waited for."""
    vacuums = Vacuums(every)
    if every is None:
        yield vacuums
        return
    conn = await databases.connect(url)
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
                return
            started = time.perf_counter()
            await conn.execute(f"vacuum (skip_locked) {S}._private_jobs")
            vacuums.seconds.append(time.perf_counter() - started)

    task = asyncio.ensure_future(loop())
    try:
        yield vacuums
    finally:
        stop.set()
        await task
        await conn.close()


async def drain(
    url: str, side: sides.Side, profile: str, *, ready: int, concurrency: int,
    processes: int = 1, bound: float, vacuum_every: float | None = None,
) -> Figure:
    """Jobs per second of ``processes`` `--once` workers of ``side`` (separate processes,
    started together) draining the ``ready`` runnable jobs of the database at ``url``, from
    the first worker's first output line (its start-up done) to the last exit. After
    ``bound`` seconds the workers are killed and the figure is the rate over the jobs they
    finished by then ("bounded")."""
    if note := side.profile_note(profile):
        return Figure.missing(note)
    command = side.command(url, profile=profile, concurrency=concurrency, once=True,
                           extra=pool_args(side, processes))
    env = command.env | pool_env(side, processes)
    async with vacuuming(url, vacuum_every) as vacuums:
        results = await asyncio.gather(*(
            procs.run_spoken(command.argv, env=env, cwd=command.cwd, timeout=bound)
            for _ in range(processes)
        ))
    left = await remaining(url)
    spoke = [r.spoke_at for r in results if r.spoke_at is not None]
    first_spoke = min(spoke) if spoke else 0.0
    wall = max(r.seconds for r in results)
    bounded = any(r.returncode is None for r in results)
    failed = [r for r in results if r.returncode not in (0, None)]
    if failed or left.failed:
        return Figure.missing(f"{left.failed} jobs failed; {failed[0].tail() if failed else ''}")
    if not bounded and left.runnable:
        return Figure.missing(f"exited with {left.runnable} runnable jobs left")
    return _drain_figure(side, profile, ready, left, wall, first_spoke, bounded, bound,
                         processes=processes, pool=pool_size(side, processes),
                         **vacuums.detail())


def _drain_figure(
    side: sides.Side, profile: str, ready: int, left: Remaining, wall: float,
    first_spoke: float, bounded: bool, bound: float, **extra: object,
) -> Figure:
    done = ready - left.runnable
    working = wall - first_spoke
    if done <= 0 or working <= 0:
        return Figure.missing(f"no job done within the {bound:.0f} s bound")
    detail = {
        "jobs": done, "of": ready, "seconds": working, "wall_seconds": wall,
        "startup_seconds": first_spoke, "bounded": bounded, **extra,
    }
    note = f"stopped at the {bound:.0f} s bound: {done:,} of {ready:,} jobs" if bounded else ""
    return Figure(done / working, note or side.partial_note(profile), detail)


def repeatable(figure: Figure) -> bool:
    """Whether a drain that gave ``figure`` is worth running again: not one that failed or
    was stopped at its bound (another would take as long and say the same)."""
    return figure.value is not None and not figure.detail.get("bounded")


def median_drain(figures: list[Figure]) -> Figure:
    """One point's drain from its repeats (in the order they ran): the median by jobs/s,
    the lower middle one of an even count so that the figure and its detail are one real
    drain, with every repeat's rate in ``detail["repeats"]``. A failed repeat (the last one
    run: a side is not repeated after it) makes the point fail with its note."""
    if not figures:
        raise ValueError("a point needs at least one drain")
    rated = [(figure.value, figure) for figure in figures if figure.value is not None]
    if len(rated) < len(figures):
        return next(figure for figure in figures if figure.value is None)
    middle = sorted(rated, key=lambda pair: pair[0])[(len(rated) - 1) // 2][1]
    rates = [round(rate, 1) for rate, _ in rated]
    return Figure(middle.value, middle.note, middle.detail | {"repeats": rates})


async def drain_running(
    url: str, side: sides.Side, profile: str, *, ready: int, concurrency: int, bound: float,
    vacuum_every: float | None = None,
) -> Figure:
    """Like ``drain``, with a long-running worker stopped once no job is left: for named
    queues, where a `--once` reference exits as soon as every queue with jobs left is
    locked by a job still running. The end is seen by polling the table."""
    if note := side.profile_note(profile):
        return Figure.missing(note)
    command = side.command(url, profile=profile, concurrency=concurrency, once=False)
    started = time.perf_counter()
    worker = await procs.start(command.argv, env=command.env, cwd=command.cwd)
    first_spoke: float | None = None
    bounded = False
    conn = await databases.connect(url)
    try:
        async with vacuuming(url, vacuum_every) as vacuums:
            while True:
                now = time.perf_counter()
                if first_spoke is None and worker.output():
                    first_spoke = now - started
                if not await conn.fetchval(f"select exists(select 1 from {S}._private_jobs)"):
                    break
                if worker.proc.returncode is not None:
                    return Figure.missing(f"the worker exited: {worker.tail()}")
                if now - started > bound:
                    bounded = True
                    break
                await asyncio.sleep(POLL_SECONDS)
            wall = time.perf_counter() - started
    finally:
        await conn.close()
        await worker.stop()
    left = await remaining(url)
    if left.failed:
        return Figure.missing(f"{left.failed} jobs failed; {worker.tail()}")
    return _drain_figure(side, profile, ready, left, wall, first_spoke or 0.0, bounded, bound,
                         **vacuums.detail())


def reference_fetch_statement(batch: int) -> str:
    """The fetch statement the pinned reference sends for ``batch`` jobs (from its code)."""
    module = reference.INTEROP_DIR / "node_modules" / "graphile-worker" / "dist" / "sql"
    result = subprocess.run(
        ["node", str(REFERENCE_FETCH_SCRIPT), str(module / "getJobs.js"), profiles.SCHEMA,
         str(batch)],
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False,
    )
    if result.returncode != 0 or "_private_jobs" not in result.stdout:
        raise RuntimeError(f"could not get the reference's fetch statement: {result.stderr}")
    return result.stdout


@dataclass(frozen=True)
class FetchPlan:
    """One side's fetch: its statement, the session settings it runs with, its batch."""

    side: str
    statement: str
    settings: dict[str, str]
    batch: int
    with_limit_param: bool  # gw passes the batch as $3; the reference writes it in the text


def gw_fetch_plan(batch: int) -> FetchPlan:
    from graphile_worker_cli.queries import worker as queries
    from graphile_worker_cli.worker.fetchconn import PLANNER_SETTINGS

    return FetchPlan(
        "gw", queries.FETCH_JOBS.sql(profiles.SCHEMA), dict(PLANNER_SETTINGS), batch, True
    )


def reference_fetch_plan(batch: int) -> FetchPlan:
    return FetchPlan("reference", reference_fetch_statement(batch), {}, batch, False)


async def _fetch_args(conn: asyncpg.Connection, plan: FetchPlan) -> list[object]:
    task_id = await conn.fetchval(
        f"select id from {S}._private_tasks where identifier = 'bench_noop'"
    )
    args: list[object] = ["bench-fetch", [task_id]]
    if plan.with_limit_param:
        args.append(plan.batch)
    return args


async def explain_fetch(url: str, plan: FetchPlan) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of one fetch, in a transaction rolled back."""
    conn = await asyncpg.connect(url, server_settings=plan.settings or None)
    try:
        args = await _fetch_args(conn, plan)
        transaction = conn.transaction()
        await transaction.start()
        try:
            lines = await conn.fetch("explain (analyze, buffers) " + plan.statement, *args)
        finally:
            await transaction.rollback()
    finally:
        await conn.close()
    return "\n".join(line[0] for line in lines) + "\n"


async def fetch_latency(url: str, plan: FetchPlan, *, samples: int, budget: float) -> Figure:
    """Milliseconds per fetch statement (median of up to ``samples``, within ``budget``
    seconds), each fetch's jobs deleted before the next, as a worker's completions would."""
    from graphile_worker_cli.queries import worker as queries

    complete = queries.COMPLETE_JOBS.sql(profiles.SCHEMA)
    fetcher = await asyncpg.connect(url, server_settings=plan.settings or None)
    completer = await databases.connect(url)
    times: list[float] = []
    rows_per_fetch: list[int] = []
    try:
        args = await _fetch_args(fetcher, plan)
        deadline = time.monotonic() + budget
        while len(times) < samples and time.monotonic() < deadline:
            started = time.perf_counter()
            rows = await fetcher.fetch(plan.statement, *args)
            times.append((time.perf_counter() - started) * 1000)
            rows_per_fetch.append(len(rows))
            if not rows:
                break
            await completer.execute(complete, "bench-fetch", [row["id"] for row in rows])
    finally:
        await fetcher.close()
        await completer.close()
    if not times or not rows_per_fetch[0]:
        return Figure.missing("the fetch found no job")
    detail = {
        "samples": len(times), "batch": plan.batch, "p90_ms": _quantile(times, 0.9),
        "max_ms": max(times), "jobs_per_fetch": statistics.mean(rows_per_fetch),
    }
    return Figure(statistics.median(times), "", detail)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
