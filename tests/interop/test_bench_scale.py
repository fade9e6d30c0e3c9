"""``python -m bench scale``: its bulk loader writes what ``add_jobs`` writes, and its quick
mode runs every curve end to end (no timing assertions)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench import backlog
from tests.helpers.bench import run_bench
from tests.helpers.paths import REPO_ROOT

pytestmark = pytest.mark.interop

S = "graphile_worker"
COMPARED = """
select t.identifier, q.queue_name, j.payload::text as payload, j.priority, j.attempts,
       j.max_attempts, j.last_error, j.key, j.locked_at, j.locked_by, j.revision, j.flags,
       j.is_available, round(extract(epoch from j.run_at - j.created_at)) as due_in,
       j.created_at = j.updated_at as untouched
from {S}._private_jobs as j
join {S}._private_tasks as t on t.id = j.task_id
left join {S}._private_job_queues as q on q.id = j.job_queue_id
where j.id = any($1::bigint[])
order by j.payload::text
"""


async def _rows(conn: asyncpg.Connection, ids: list[int]) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(COMPARED.format(S=S), ids)]


@pytest.mark.parametrize("queues, delay", [(0, 0.0), (2, 0.0), (0, 3600.0)])
async def test_bulk_load_writes_the_rows_add_jobs_writes(
    conn: asyncpg.Connection, queues: int, delay: float
) -> None:
    # the same specs through add_jobs, the payload built by the same SQL expression
    added = await conn.fetch(
        f"select id from {S}.add_jobs(array(select row('bench_noop', {backlog.DEFAULT_PAYLOAD_SQL},"
        " case when $1::int > 0 then 'bench_q' || (((i - 1) % $1::int) + 1) end,"
        f" now() + $2::float8 * interval '1 second', null, null, null, null)::{S}.job_spec"
        " from generate_series(1, 3) as i order by i))",
        queues, delay,
    )
    before = await conn.fetchval(f"select coalesce(max(id), 0) from {S}._private_jobs")
    await backlog.load(conn, backlog.Backlog(3, queues=queues, delay_seconds=delay))
    loaded = await conn.fetch(f"select id from {S}._private_jobs where id > $1", before)
    assert len(loaded) == 3
    assert await _rows(conn, [r["id"] for r in loaded]) == await _rows(
        conn, [r["id"] for r in added]
    )
    # no second task or queue row for names add_jobs already made
    assert await conn.fetchval(f"select count(*) from {S}._private_tasks") == 1
    assert await conn.fetchval(f"select count(*) from {S}._private_job_queues") == queues


@pytest.mark.timeout(230)
async def test_scale_quick_mode_writes_every_curve_a_chart_and_the_plans(
    tmp_path: Path, pg_admin_url: str
) -> None:
    out, chart, plans = tmp_path / "scale.json", tmp_path / "scale.png", tmp_path / "plans"
    result = await asyncio.to_thread(
        run_bench, "scale", "--quick", "--json", str(out), "--markdown", str(tmp_path / "s.md"),
        "--chart", str(chart), "--plans", str(plans), admin_url=pg_admin_url, timeout=220,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    curves = data["curves"]
    seen = {(c["group"], c["x"], c["profile"]) for c in curves}
    sizes = data["sizes"]
    expected = {
        *(("backlog", n) for n in sizes["backlogs"]),
        ("future", 0), ("future", sizes["future_jobs"]),
        *(("queues", n) for n in sizes["queue_counts"]),
        *(("processes", n) for n in sizes["process_counts"]),
    }
    assert seen == {(g, x, p) for g, x in expected for p in ("defaults", "tuned")}
    for curve in curves:
        for side in ("gw", "reference"):
            figure = curve["drain"][side]
            # a rate, or None with the reason it is missing
            assert (figure["value"] or 0) > 0 or figure["note"], (curve, side)
        assert curve["drain"]["gw"]["value"], curve  # gw always drains its jobs
        assert not curve["drain"]["gw"]["detail"]["bounded"], curve
        assert len(curve["drain"]["gw"]["detail"]["repeats"]) == 1, curve  # --quick: one drain
        if curve["group"] in ("backlog", "future"):
            assert curve["drain"]["reference"]["value"], curve
            assert curve["fetch"]["gw"]["value"] and curve["fetch"]["reference"]["value"], curve
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(plans.glob("backlog_*_gw_batch500.txt"))
    assert any(plans.glob("backlog_*_reference_batch1.txt"))
    assert "| backlog |" in result.stdout

    conn = await asyncpg.connect(pg_admin_url)
    try:
        left = await conn.fetchval(
            "select count(*) from pg_database where datname like $1",
            f"gwbench_{data['run_id']}_%",
        )
    finally:
        await conn.close()
    assert left == 0


def test_bad_scale_option_is_one_line_and_exit_2(pg_admin_url: str) -> None:
    result = run_bench("scale", "--quick", "--backlogs", "0", admin_url=pg_admin_url, timeout=60)
    assert result.returncode == 2
    assert "expected integers of at least 1, got '0'" in result.stderr
    assert "Traceback" not in result.stderr
    assert REPO_ROOT.exists()
