"""The benchmark's quick mode runs end to end and reports every row (no timing assertions)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.bench import run_bench

pytestmark = pytest.mark.interop

EXPECTED_ROWS = {
    "drain_defaults", "drain_tuned", "drain_tuned_bound",
    "drain_tuned_backlog", "drain_tuned_backlog_bound", "drain_tuned_history",
    "drain_tuned_history_bound",
    "latency_p50_defaults", "latency_p99_defaults", "latency_p50_tuned", "latency_p99_tuned",
    "enqueue", "enqueue_psycopg", "once_empty", "idle_rss", "processes",
    "drain_limited_defaults", "drain_limited_tuned",
}
# rows whose baseline is the Node reference or bare SQL: those figures must always exist
BASELINE_ROWS = EXPECTED_ROWS - {"processes", "drain_limited_defaults", "drain_limited_tuned"}


@pytest.mark.timeout(170)
async def test_quick_mode_writes_every_row_and_drops_its_databases(
    tmp_path: Path, pg_admin_url: str
) -> None:
    out = tmp_path / "bench.json"
    result = await asyncio.to_thread(
        run_bench, "--quick", "--json", str(out), admin_url=pg_admin_url, timeout=160
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    rows = {row["key"]: row for row in data["rows"]}
    assert set(rows) == EXPECTED_ROWS
    for key, row in rows.items():
        for side in ("gw", "baseline"):
            figure = row[side]
            # a figure is a positive number, or None with the reason it is missing
            assert (figure["value"] or 0) > 0 or figure["note"], (key, side, figure)
    for key in BASELINE_ROWS:
        assert rows[key]["baseline"]["value"] is not None, (key, rows[key]["baseline"])
    assert "gw/baseline" in result.stdout

    conn = await asyncpg.connect(pg_admin_url)
    try:
        left = await conn.fetchval(
            "select count(*) from pg_database where datname like $1",
            f"gwbench_{data['run_id']}_%",
        )
    finally:
        await conn.close()
    assert left == 0


def test_bad_option_is_one_line_and_exit_2(pg_admin_url: str) -> None:
    result = run_bench("--quick", "--jobs", "0", admin_url=pg_admin_url, timeout=60)
    assert result.returncode == 2
    assert "--jobs must be at least 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_negative_backlog_is_one_line_and_exit_2(pg_admin_url: str) -> None:
    result = run_bench("--quick", "--backlog-jobs", "-1", admin_url=pg_admin_url, timeout=60)
    assert result.returncode == 2
    assert "--backlog-jobs must be 0 or more, got -1" in result.stderr
    assert "Traceback" not in result.stderr


def test_gw_flags_missing_from_gw_run_are_dropped_and_reported(tmp_path: Path) -> None:
    from bench import sides

    gw = sides.GwSide(tmp_path, flags={"--once", "--local-queue-size"})
    args, missing = gw.profile_args("tuned")
    assert args == ["--local-queue-size", "500"]
    assert missing == ["--complete-job-batch-delay", "--fail-job-batch-delay"]
    assert gw.profile_note("tuned") == ""
    assert gw.partial_note("tuned") == "without --complete-job-batch-delay, --fail-job-batch-delay"
    command = gw.command("postgres://x/db", profile="tuned", concurrency=24, once=True)
    assert "--complete-job-batch-delay" not in command.argv
    assert command.argv[-1] == "--once"

    bare = sides.GwSide(tmp_path, flags={"--once"})
    assert bare.profile_note("tuned").startswith("n/a: `gw run` has none of --local-queue-size")
    assert bare.profile_note("defaults") == ""
