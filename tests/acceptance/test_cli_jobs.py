"""``gw add-job``, ``gw jobs ...`` and ``gw cleanup`` run as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.paths import GW


def clean_env() -> dict[str, str]:
    """The environment without any gw settings of the machine running the tests."""
    return {
        name: value for name, value in os.environ.items()
        if not name.startswith("GW_") and name not in ("DATABASE_URL", "GRAPHILE_WORKER_SCHEMA")
    }


async def gw(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [GW, *args], input=stdin, capture_output=True, text=True,
        env=clean_env(), cwd=cwd, timeout=60,
    )


def one_error_line(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


async def test_add_job_with_every_option(db_url: str, conn: asyncpg.Connection) -> None:
    result = await gw(
        "add-job", "send_email", '{"to": "a@example.com", "n": [1, 2]}', "-c", db_url,
        "--queue", "mail", "--priority", "-3", "--max-attempts", "4", "--job-key", "welcome",
        "--job-key-mode", "preserve_run_at", "--flag", "slow", "--flag", "gpu",
        "--run-at", "2031-02-03T04:05:06+02:00",
    )
    assert result.returncode == 0, result.stderr
    job_id = int(result.stdout.strip())
    job = await conn.fetchrow("select * from graphile_worker.jobs where id = $1", job_id)
    assert job is not None
    assert (job["task_identifier"], job["queue_name"]) == ("send_email", "mail")
    assert job["priority"] == -3
    assert (job["max_attempts"], job["key"]) == (4, "welcome")
    assert json.loads(job["flags"]) == {"slow": True, "gpu": True}
    assert job["run_at"] == datetime(2031, 2, 3, 2, 5, 6, tzinfo=UTC)
    payload = await conn.fetchval(
        "select payload from graphile_worker._private_jobs where id = $1", job_id
    )
    assert json.loads(payload) == {"to": "a@example.com", "n": [1, 2]}


async def test_add_job_delay_stdin_and_json(db_url: str) -> None:
    before = datetime.now(UTC)
    result = await gw("add-job", "t", "-", "--delay", "5m", "--json", "-c", db_url,
                      stdin='[{"item": 1}]')
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["payload"] == [{"item": 1}] and job["state"] == "scheduled"
    run_at = datetime.fromisoformat(job["run_at"])
    assert before + timedelta(minutes=5) <= run_at <= datetime.now(UTC) + timedelta(minutes=5)
    plain = await gw("add-job", "t", "-c", db_url, "--json")
    assert json.loads(plain.stdout)["payload"] == {}


async def test_jobs_list_show_and_filters(db_url: str, conn: asyncpg.Connection) -> None:
    first = int((await gw("add-job", "a", '{"x": 1}', "--queue", "q", "-c", db_url)).stdout)
    second = int((await gw("add-job", "b", "--delay", "1h", "-c", db_url)).stdout)

    listed = json.loads((await gw("jobs", "list", "--json", "-c", db_url)).stdout)
    assert [(j["id"], j["task_identifier"], j["state"]) for j in listed] == [
        (first, "a", "ready"), (second, "b", "scheduled"),
    ]
    for filters, expected in [
        (["--task", "b"], [second]), (["--queue", "q"], [first]),
        (["--state", "scheduled"], [second]), (["--state", "failed"], []),
        (["--limit", "1"], [first]),
    ]:
        result = await gw("jobs", "list", "--json", "-c", db_url, *filters)
        assert [j["id"] for j in json.loads(result.stdout)] == expected, filters

    table = await gw("jobs", "list", "-c", db_url)
    assert table.returncode == 0 and "scheduled" in table.stdout
    shown = json.loads((await gw("jobs", "show", str(first), "--json", "-c", db_url)).stdout)
    assert (shown["payload"], shown["queue_name"]) == ({"x": 1}, "q")
    human = await gw("jobs", "show", str(first), "-c", db_url)
    assert human.returncode == 0 and '"x": 1' in human.stdout
    one_error_line(await gw("jobs", "show", "999999", "-c", db_url), 1, "no job with id 999999")
    one_error_line(await gw("jobs", "list", "--state", "done", "-c", db_url), 2, "ready, scheduled")


async def test_complete_fail_reschedule_remove(db_url: str, conn: asyncpg.Connection) -> None:
    ids = [int((await gw("add-job", "t", "-c", db_url)).stdout) for _ in range(3)]
    keyed = int((await gw("add-job", "t", "--job-key", "k", "-c", db_url)).stdout)
    await conn.execute(
        "update graphile_worker._private_jobs set locked_at = now(), locked_by = 'w' "
        "where id = $1", ids[2],
    )
    result = await gw("jobs", "reschedule", str(ids[0]), "--priority", "7", "--attempts", "2",
                      "--run-at", "2040-01-01T00:00:00", "-c", db_url, "--json")
    assert result.returncode == 0, result.stderr
    (moved,) = json.loads(result.stdout)
    assert (moved["priority"], moved["attempts"], moved["run_at"]) == (
        7, 2, "2040-01-01T00:00:00+00:00",
    )
    result = await gw("jobs", "fail", str(ids[1]), "--reason", "bad data", "-c", db_url)
    assert result.returncode == 0 and "failed 1 job(s)" in result.stdout
    assert await conn.fetchval(
        "select last_error from graphile_worker._private_jobs where id = $1", ids[1]
    ) == "bad data"
    # The locked job is not touched: exit 1, naming it.
    result = await gw("jobs", "complete", str(ids[0]), str(ids[2]), "-c", db_url)
    one_error_line(result, 1, f"job(s) {ids[2]} not completed")
    assert f"completed 1 job(s): {ids[0]}" in result.stdout
    result = await gw("jobs", "remove", "k", "-c", db_url)
    assert result.returncode == 0 and f"removed job {keyed}" in result.stdout
    one_error_line(await gw("jobs", "remove", "k", "-c", db_url), 1, "no job with key 'k'")
    one_error_line(await gw("jobs", "reschedule", "1", "-c", db_url), 2, "nothing to change")
    remaining = await conn.fetch("select id from graphile_worker._private_jobs order by id")
    assert [r["id"] for r in remaining] == [ids[1], ids[2]]


async def test_cleanup_command(db_url: str, conn: asyncpg.Connection) -> None:
    failed = int((await gw("add-job", "dead", "--queue", "dq", "-c", db_url)).stdout)
    assert (await gw("jobs", "fail", str(failed), "-c", db_url)).returncode == 0
    await gw("add-job", "kept", "-c", db_url)
    await conn.execute("delete from graphile_worker._private_jobs where id <> $1", failed)
    result = await gw(
        "cleanup", "--task", "DELETE_PERMAFAILED_JOBS", "--task", "GC_TASK_IDENTIFIERS",
        "--task", "gc_job_queues", "--keep-task", "kept", "--json", "-c", db_url,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DELETE_PERMAFAILED_JOBS": 1, "GC_TASK_IDENTIFIERS": 1, "GC_JOB_QUEUES": 1,
    }
    tasks = await conn.fetch("select identifier from graphile_worker._private_tasks")
    assert [t["identifier"] for t in tasks] == ["kept"]
    one_error_line(await gw("cleanup", "--task", "VACUUM", "-c", db_url), 2, "GC_JOB_QUEUES")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["add-job", "t", "{not json"], 2, "invalid payload JSON"),
        (["add-job", "t", '"a string"'], 2, "expected a JSON object or array"),
        (["add-job", "t", "--job-key", "k", "--job-key-mode", "often"], 2, "unknown job key mode"),
        (["add-job", "t", "--job-key-mode", "replace"], 2, "--job-key-mode needs --job-key"),
        (["add-job", "t", "--run-at", "tomorrow"], 2, "ISO 8601"),
        (["add-job", "t", "--run-at", "2030-01-01", "--delay", "1s"], 2, "not both"),
        (["add-job", "t", "--max-attempts", "0"], 2, "max_attempts"),
        (["jobs", "fail", "1"], 1, "not failed"),
    ],
)
async def test_bad_input_is_one_line(db_url: str, args: list[str], code: int, needle: str) -> None:
    one_error_line(await gw(*args, "-c", db_url), code, needle)


async def test_bad_connections(db_url: str) -> None:
    one_error_line(await gw("add-job", "t", "-c", "mysql://nope"), 2, "invalid connection string")
    one_error_line(
        await gw("jobs", "list", "-c", "postgres://postgres@127.0.0.1:1/x"), 1, "unreachable"
    )
    one_error_line(
        await gw("jobs", "list", "-c", db_url, "--schema", "missing"), 1, "gw migrate"
    )


async def test_schema_newer_than_gw_exits_57(db_url: str, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "insert into graphile_worker.migrations (id, breaking) values (21, true)"
    )
    one_error_line(await gw("add-job", "t", "-c", db_url), 57, "breaking migration 21")
    assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 0


async def test_schema_behind_gw_is_one_line_and_no_job(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await conn.execute("delete from graphile_worker.migrations where id = 20")
    one_error_line(
        await gw("add-job", "t", "-c", db_url), 1, "at migration 19 of 20", "gw migrate"
    )
    assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 0
