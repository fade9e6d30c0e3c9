"""The ``enqueue_psycopg`` row: ``SyncWorkerUtils.add_jobs(conn=...)`` against the bare SQL
``add_jobs`` function, both on one psycopg connection, batch for batch.

The two sides alternate on the same connection and database (each batch committed), so
table growth and machine noise hit both alike; JSON encoding of the same dicts is timed on
both sides. Also reported: statements per ``add_jobs`` call on the gw side."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bench import measures, profiles
from bench.report import Figure

BARE_SQL = (
    f"select * from {measures.S}.add_jobs(array(select json_populate_recordset("
    f"null::{measures.S}.job_spec, %s::json)), false)"
)


def _batches(total: int, batch: int) -> list[list[dict[str, int]]]:
    items = [{"i": i} for i in range(total)]
    return [items[start:start + batch] for start in range(0, total, batch)]


def _race(url: str, total: int, batch: int) -> tuple[float, float, float]:
    """(gw seconds, bare seconds, statements per gw call)."""
    import psycopg

    from graphile_worker_cli import sync

    gw = sync.SyncWorkerUtils(schema=profiles.SCHEMA)
    statements = 0

    class Counting(psycopg.Cursor[Any]):
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal statements
            statements += 1
            return super().execute(*args, **kwargs)

    def bare(items: list[dict[str, int]]) -> object:
        specs = [{"identifier": "bench_noop", "payload": item} for item in items]
        return conn.execute(BARE_SQL, (json.dumps(specs),)).fetchall()

    def mine(items: list[dict[str, int]]) -> object:
        return gw.add_jobs([("bench_noop", item) for item in items], conn=conn)

    with psycopg.connect(url, autocommit=True, cursor_factory=Counting) as conn:
        batches = _batches(total, batch)
        for _ in range(6):  # warm-up: psycopg prepares a statement on its 5th run
            bare(batches[0])
            mine(batches[0])
        spent = {"gw": 0.0, "bare": 0.0}
        statements = 0
        for number, items in enumerate(batches):
            order = (("gw", mine), ("bare", bare)) if number % 2 else (
                ("bare", bare), ("gw", mine))
            for side, add in order:
                started = time.perf_counter()
                add(items)
                spent[side] += time.perf_counter() - started
        # Both sides ran len(batches) calls; the bare side's are one statement each.
        per_call = (statements - len(batches)) / len(batches)
    return spent["gw"], spent["bare"], per_call


async def enqueue_psycopg(ctx: measures.Context) -> tuple[Figure, Figure]:
    """One run: jobs/s of each side on one psycopg connection."""
    try:
        import psycopg  # noqa: F401
    except ImportError as error:
        missing = Figure.missing(f"n/a: psycopg not installed ({error})")
        return missing, missing
    total, batch = ctx.sizes.enqueue_jobs, ctx.sizes.enqueue_batch
    async with ctx.dbs.fresh("gw", "enqueue_psycopg") as url:
        mine, bare, per_call = await asyncio.to_thread(_race, url, total, batch)
    detail = {"batch": batch, "statements_per_call": per_call}
    return (
        Figure(total / mine, detail={**detail, "seconds": mine}),
        Figure(total / bare, detail={**detail, "seconds": bare}),
    )
