"""A task's return value as the reference reads it: a list returned for a JSON array payload
is one result per item (the failed items stay in the job), ``False`` is a success."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli.context import WorkerContext
from graphile_worker_cli.tasks import TaskFailure, TaskHandler, TaskSuccess
from tests.test_tasks import run
from tests.test_worker import S, add_job, make_options

ITEMS = [{"n": 1}, {"n": 2, "note": "é"}, {"n": 3}, {"n": 4}, {"n": 5}]


async def per_item(payload: Any) -> list[object]:
    return [None, ValueError("two is odd"), TaskFailure("three refused"), "a string", False]


async def test_a_list_for_an_array_payload_fails_only_the_failed_items() -> None:
    outcome = await run(per_item, ITEMS)
    assert outcome == TaskFailure(
        "Batch failures:\ntwo is odd\nthree refused",
        replacement_payload=[{"n": 2, "note": "é"}, {"n": 3}],
    )


async def test_awaitables_in_the_list_are_settled_together() -> None:
    started: list[int] = []
    both_running = asyncio.Event()

    async def handle(item: dict[str, Any]) -> None:
        started.append(item["n"])
        if len(started) == 2:
            both_running.set()
        await asyncio.wait_for(both_running.wait(), 5)  # each waits for the other
        if item["n"] == 2:
            raise KeyError("missing")

    async def concurrent(payload: list[dict[str, Any]]) -> list[object]:
        return [handle(item) for item in payload]

    outcome = await run(concurrent, ITEMS[:2])
    assert outcome == TaskFailure("Batch failures:\n'missing'", replacement_payload=[ITEMS[1]])


def sync_per_item(payload: list[Any]) -> list[object]:  # runs in a thread
    return [RuntimeError("")] + [None] * (len(payload) - 1)


async def test_a_sync_task_too_and_an_empty_message_is_an_empty_line() -> None:
    assert await run(sync_per_item, ITEMS[:3]) == TaskFailure(
        "Batch failures:\n", replacement_payload=[ITEMS[0]]
    )


async def test_every_item_done_is_a_success() -> None:
    async def fine(payload: Any) -> list[object]:
        return [None, True, "ok", 0, TaskSuccess()]

    assert await run(fine, ITEMS) == TaskSuccess()


async def test_a_list_of_another_length_is_a_success_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def short(payload: Any) -> list[object]:
        return [ValueError("lost")]

    caplog.set_level(logging.WARNING, logger="gw.tasks")
    assert await run(short, ITEMS[:2], identifier="short") == TaskSuccess()
    assert [r.getMessage() for r in caplog.records] == [
        'task "short" returned 1 results for an array payload of 2 items: treated as a '
        "success for every item (return nothing, or one result per item)"
    ]


async def test_a_list_for_a_payload_that_is_not_an_array_is_a_plain_value() -> None:
    async def listy(payload: Any) -> list[object]:
        return [ValueError("not an item")]

    assert await run(listy, {"n": 1}) == TaskSuccess()


async def test_raising_fails_the_whole_job_and_keeps_its_payload() -> None:
    async def explode(payload: Any) -> list[object]:
        raise OSError("disk full")

    outcome = await run(explode, ITEMS)
    assert outcome == TaskFailure("OSError: disk full")
    assert not outcome.has_replacement


class Flag(TaskHandler):
    IDENTIFIER = "flag"
    ok: bool

    async def run(self, ctx: WorkerContext) -> object:
        return self.ok


@pytest.mark.parametrize("handler", [Flag, lambda payload: False])
async def test_returning_false_is_a_success(handler: object) -> None:
    assert await run(handler, {"ok": False}, identifier="flag") == TaskSuccess()


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
    assert row["last_error"].startswith("went wrong\n(new payload not written: payload of type")
