"""Records when the handler started (this process's clock), for the latency benchmark."""

import time

INSERT = "insert into public.bench_latency (job_id, started_at) values ($1, to_timestamp($2))"


async def task(payload, ctx):  # type: ignore[no-untyped-def]
    started = time.time()
    await ctx.query(INSERT, ctx.job.id, started)
