"""``gw run --history-retention`` and ``gw jobs history`` as real subprocesses (issue 17
item 7): a worker records the jobs it finishes; the command lists, filters, prints JSON and
refuses a bad ``--since`` with one line."""

from __future__ import annotations

import json

import asyncpg

from tests.acceptance.test_cli_jobs import gw, one_error_line
from tests.helpers.paths import REPO_ROOT

TASKS = str(REPO_ROOT / "tests" / "fixtures" / "tasks_basic")


async def test_gw_run_records_history_and_gw_jobs_history_lists_it(
    db_url: str, conn: asyncpg.Connection
) -> None:
    sent = [
        await conn.fetchval(
            "select id from graphile_worker.add_job('send_email',"
            " json_build_object('to', $1::text))",
            f"user{n}@example.com",
        )
        for n in range(3)
    ]
    bad = await conn.fetchval(
        "select id from graphile_worker.add_job('send_email', '{}'::json, max_attempts := 1)"
    )
    ran = await gw("run", "--once", "-c", db_url, "--tasks", TASKS,
                   "--history-retention", "7d")
    assert ran.returncode == 0, ran.stderr
    worker_id = await conn.fetchval(
        "select worker_id from graphile_worker._gw_job_history limit 1"
    )

    table = await gw("jobs", "history", "-c", db_url)
    assert table.returncode == 0, table.stderr
    for job_id in (*sent, bad):
        assert str(job_id) in table.stdout
    assert worker_id in table.stdout  # ids are never cut
    assert "completed" in table.stdout and "failed" in table.stdout

    failed = await gw("jobs", "history", "-c", db_url, "--failed", "--json")
    assert failed.returncode == 0, failed.stderr
    rows = json.loads(failed.stdout)
    assert [(row["job_id"], row["outcome"], row["task_identifier"]) for row in rows] == [
        (bad, "failed", "send_email")]
    assert rows[0]["last_error"] and rows[0]["worker_id"] == worker_id

    recent = await gw("jobs", "history", "-c", db_url, "--since", "10m", "--task",
                      "send_email", "--limit", "2", "--json")
    assert recent.returncode == 0, recent.stderr
    assert len(json.loads(recent.stdout)) == 2
    future = await gw("jobs", "history", "-c", db_url, "--since", "2100-01-01T00:00:00Z")
    assert future.returncode == 0 and "no job history" in future.stdout


async def test_a_bad_since_is_one_line(db_url: str) -> None:
    result = await gw("jobs", "history", "-c", db_url, "--since", "yesterday")
    one_error_line(result, 2, "--since", "yesterday", "ISO 8601")


async def test_a_bad_history_retention_is_one_line(db_url: str) -> None:
    result = await gw("run", "--once", "-c", db_url, "--tasks", TASKS,
                      "--history-retention", "forever")
    assert result.returncode != 0
    assert "history" in result.stderr and "forever" in result.stderr
    assert "Traceback" not in result.stderr
