"""What a worker writes for a task's per-item outcomes: the failed items as Node writes them,
and the payload kept when a replacement is not JSON (tests/unit/test_task_outcomes.py: the
outcomes themselves)."""

from __future__ import annotations

from typing import Any

import asyncpg

from graphile_worker_cli.tasks import TaskFailure
from tests.helpers.worker import S, add_job, make_options


async def test_a_worker_writes_the_failed_items_as_node_would(
    db_url: str, conn: asyncpg.Connection
) -> None:
    job_id = await add_job(conn, "per_item", [{"n": 1.0}, {"n": 2, "fail": "é"}])
    await conn.execute(  # the text a producer wrote, spaces and all
        f"update {S}._private_jobs set payload = $2::json where id = $1", job_id,
        '[{"n": 1.0}, {"n": 2.0, "fail": "é", "v": 1e-05}]',
    )

    async def per_item(payload: list[dict[str, Any]]) -> list[object]:
        return [ValueError(item["fail"]) if "fail" in item else None for item in payload]

    worker = await make_options(db_url).define_job(per_item, "per_item").init()
    await worker.run_once()
    row = await conn.fetchrow(
        f"select payload::text as payload, last_error, attempts from {S}._private_jobs"
    )
    assert row is not None
    assert dict(row) == {
        "payload": '[{"n":2,"fail":"é","v":0.00001}]',
        "last_error": "Batch failures:\né",
        "attempts": 1,
    }


async def test_a_replacement_payload_that_is_not_json_keeps_the_payload_and_says_why(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await add_job(conn, "odd", {"keep": "me"})

    async def odd(payload: Any) -> TaskFailure:
        return TaskFailure("went wrong", replacement_payload={"when": object()})

    worker = await make_options(db_url).define_job(odd, "odd").init()
    await worker.run_once()
    row = await conn.fetchrow(
        f"select payload::text as payload, last_error, locked_by from {S}._private_jobs"
    )
    assert row is not None
    assert row["payload"] == '{"keep": "me"}' and row["locked_by"] is None
    assert row["last_error"].startswith(
        "went wrong\n(new payload not written: payload cannot be stored as JSON"
    )
