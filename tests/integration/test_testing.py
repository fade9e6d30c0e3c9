"""graphile_worker_cli.testing: the helpers an application's own tests use."""

from __future__ import annotations

from typing import Any

import asyncpg

from graphile_worker_cli import TaskHandler, WorkerContext, sync, task, testing
from graphile_worker_cli.job import JobSpec
from graphile_worker_cli.worker_utils import WorkerUtils

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
        await WorkerUtils.connect(url, max_size=1) as gw,
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
        async with await WorkerUtils.connect(db_url, schema=schema, max_size=1) as gw:
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


def test_run_jobs_until_idle_sync_for_synchronous_tests(db_url: str) -> None:
    SENT.clear()
    with sync.SyncWorkerUtils.connect(db_url, max_size=1) as queue:
        queue.add_job("send_email", {"to": "c@example.com"}, JobSpec(priority=1))
    outcomes = testing.run_jobs_until_idle_sync(db_url, [SendEmail])
    assert [(o.job.task_identifier, o.status) for o in outcomes] == [
        ("send_email", "completed")
    ]
    assert SENT == ["c@example.com"]
