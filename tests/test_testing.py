"""graphile_worker_cli.testing: the helpers an application's own tests use."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import TaskHandler, WorkerContext, sync, task, testing, utils
from graphile_worker_cli.job import Job, JobSpec
from tests.test_run_cli import clean_env

SENT: list[str] = []


class SendEmail(TaskHandler):
    IDENTIFIER = "send_email"

    to: str

    async def run(self, ctx: WorkerContext) -> None:
        SENT.append(self.to)


@task
async def sign_up(payload: dict[str, Any], ctx: WorkerContext) -> None:
    await ctx.add_job("send_email", {"to": payload["email"]})


@task
def charge(payload: dict[str, Any], ctx: WorkerContext) -> None:
    raise RuntimeError(f"card {payload['card']} declined")


async def test_run_jobs_until_idle_runs_queued_jobs_and_the_jobs_they_add(
    pg_admin_url: str,
) -> None:
    SENT.clear()
    async with (
        testing.throwaway_database(pg_admin_url) as url,
        await utils.WorkerUtils.connect(url, max_size=1) as gw,
    ):
        await gw.add_job("sign_up", {"email": "a@example.com"})
        await gw.add_job("charge", {"card": "4242"})
        await gw.add_job("not_mine", {})
        outcomes = await testing.run_jobs_until_idle(url, [SendEmail, sign_up, charge])
        left = await gw.list_jobs()
    assert sorted((o.job.task_identifier, o.status) for o in outcomes) == [
        ("charge", "failed"), ("send_email", "completed"), ("sign_up", "completed"),
    ]
    (failed,) = [o for o in outcomes if o.status == "failed"]
    assert failed.error is not None and "card 4242 declined" in failed.error
    assert failed.will_retry and failed.job.attempts == 1
    assert SENT == ["a@example.com"]
    # The failure waits for its retry; the unknown task's job was not touched.
    assert sorted(job.task_identifier for job in left) == ["charge", "not_mine"]


async def test_throwaway_schema_is_migrated_then_dropped(db_url: str) -> None:
    SENT.clear()
    async with testing.throwaway_schema(db_url) as schema:
        assert schema.startswith("gw_test_")
        async with await utils.WorkerUtils.connect(db_url, schema=schema, max_size=1) as gw:
            await gw.add_job("send_email", {"to": "b@example.com"})
        outcomes = await testing.run_jobs_until_idle(db_url, [SendEmail], schema=schema)
        assert [o.status for o in outcomes] == ["completed"] and SENT == ["b@example.com"]
    conn = await asyncpg.connect(db_url)
    try:
        assert not await conn.fetchval(
            "select exists (select 1 from pg_namespace where nspname = $1)", schema
        )
    finally:
        await conn.close()


def queued(**fields: Any) -> Job:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": 1, "task_identifier": "send_email", "queue_name": None, "payload": {},
        "priority": 0, "run_at": now, "attempts": 0, "max_attempts": 25, "last_error": None,
        "created_at": now, "updated_at": now, "key": None, "locked_at": None,
        "locked_by": None, "revision": 0, "flags": None,
    }
    values.update(fields)
    return Job(**values)


def test_assert_job_queued_matches_task_payload_subset_queue_and_run_at() -> None:
    at = datetime(2030, 1, 1, 9, tzinfo=UTC)
    jobs = [
        queued(id=1, payload={"to": "a@example.com", "lang": "fr", "tags": [{"k": 1}]},
               queue_name="mail", run_at=at),
        queued(id=2, task_identifier="charge", payload={"card": "4242"}),
    ]
    (found,) = testing.assert_job_queued(
        jobs, "send_email", payload={"to": "a@example.com", "tags": [{}]}, queue="mail",
        run_at=(at - timedelta(minutes=1), at + timedelta(minutes=1)),
    )
    assert found.id == 1
    assert testing.matching_jobs(jobs, payload={"card": "4242"})[0].id == 2
    assert testing.matching_jobs(jobs, "send_email", queue=None) == []
    assert testing.matching_jobs(jobs, "send_email", run_at=at + timedelta(seconds=1)) == []
    assert testing.matching_jobs(jobs, "send_email", payload={"tags": []}) == []
    with pytest.raises(AssertionError) as missing:
        testing.assert_job_queued(jobs, "send_email", payload={"to": "b@example.com"})
    assert str(missing.value).splitlines() == [
        "expected 1 job(s) with task='send_email', payload containing "
        "{'to': 'b@example.com'}, found 0; queued:",
        f"  #1 send_email queue='mail' run_at={at.isoformat()} payload="
        "{'to': 'a@example.com', 'lang': 'fr', 'tags': [{'k': 1}]}",
        "  #2 charge queue=None run_at=2030-01-01T00:00:00+00:00 payload={'card': '4242'}",
    ]
    testing.assert_job_queued(jobs, "nothing", count=0)


USER_TESTS = '''
from graphile_worker_cli import task
from graphile_worker_cli.job import JobSpec
from graphile_worker_cli.testing import assert_job_queued

DONE = []


@task
def welcome(payload, ctx):
    DONE.append(payload["user"])


def test_queue_then_run(gw_utils, gw_run_jobs):
    gw_utils.add_job("welcome", {"user": 7}, JobSpec(queue_name="mail"))
    assert_job_queued(gw_utils.list_jobs(), "welcome", payload={"user": 7}, queue="mail")
    outcomes = gw_run_jobs([welcome])
    assert [o.status for o in outcomes] == ["completed"] and DONE == [7]
    assert gw_utils.list_jobs() == []


def test_each_test_has_its_own_database(gw_utils, gw_database_url):
    assert gw_utils.list_jobs() == []
    assert "/gw_test_" in gw_database_url
'''


@pytest.mark.parametrize("server", ["given", "embedded"])
async def test_pytest_plugin_fixtures_in_a_users_test_suite(
    server: str, pg_admin_url: str, tmp_path: Path,
) -> None:
    (tmp_path / "test_user_tasks.py").write_text(textwrap.dedent(USER_TESTS))
    # No URL: the plugin starts an embedded PostgreSQL for the session.
    env = clean_env(GW_TEST_DATABASE_URL=pg_admin_url)
    if server == "embedded":
        del env["GW_TEST_DATABASE_URL"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-p", "graphile_worker_cli.testing.pytest_plugin",
        "-p", "no:cacheprovider", "-q", "test_user_tasks.py", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, out.decode()
    assert "2 passed" in out.decode()


def test_run_jobs_until_idle_sync_for_synchronous_tests(db_url: str) -> None:
    SENT.clear()
    with sync.SyncWorkerUtils.connect(db_url, max_size=1) as queue:
        queue.add_job("send_email", {"to": "c@example.com"}, JobSpec(priority=1))
    outcomes = testing.run_jobs_until_idle_sync(db_url, [SendEmail])
    assert [(o.job.task_identifier, o.status) for o in outcomes] == [
        ("send_email", "completed")
    ]
    assert SENT == ["c@example.com"]
