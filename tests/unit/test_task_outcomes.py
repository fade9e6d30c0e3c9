"""A task's return value as the reference reads it: a list returned for a JSON array payload
is one result per item (the failed items stay in the job), ``False`` is a success
(tests/integration/test_task_outcomes.py: what a worker writes for them)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from graphile_worker_cli.context import WorkerContext
from graphile_worker_cli.tasks import TaskFailure, TaskHandler, TaskSuccess
from tests.helpers.context import run_task

ITEMS = [{"n": 1}, {"n": 2, "note": "é"}, {"n": 3}, {"n": 4}, {"n": 5}]


async def per_item(payload: Any) -> list[object]:
    return [None, ValueError("two is odd"), TaskFailure("three refused"), "a string", False]


async def test_a_list_for_an_array_payload_fails_only_the_failed_items() -> None:
    outcome = await run_task(per_item, ITEMS)
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

    outcome = await run_task(concurrent, ITEMS[:2])
    assert outcome == TaskFailure("Batch failures:\n'missing'", replacement_payload=[ITEMS[1]])


def sync_per_item(payload: list[Any]) -> list[object]:  # runs in a thread
    return [RuntimeError("")] + [None] * (len(payload) - 1)


async def test_a_sync_task_too_and_an_empty_message_is_an_empty_line() -> None:
    assert await run_task(sync_per_item, ITEMS[:3]) == TaskFailure(
        "Batch failures:\n", replacement_payload=[ITEMS[0]]
    )


async def test_every_item_done_is_a_success() -> None:
    async def fine(payload: Any) -> list[object]:
        return [None, True, "ok", 0, TaskSuccess()]

    assert await run_task(fine, ITEMS) == TaskSuccess()


async def test_a_list_of_another_length_is_a_success_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def short(payload: Any) -> list[object]:
        return [ValueError("lost")]

    caplog.set_level(logging.WARNING, logger="gw.tasks")
    assert await run_task(short, ITEMS[:2], identifier="short") == TaskSuccess()
    assert [r.getMessage() for r in caplog.records] == [
        'task "short" returned 1 results for an array payload of 2 items: treated as a '
        "success for every item (return nothing, or one result per item)"
    ]


async def test_a_list_for_a_payload_that_is_not_an_array_is_a_plain_value() -> None:
    async def listy(payload: Any) -> list[object]:
        return [ValueError("not an item")]

    assert await run_task(listy, {"n": 1}) == TaskSuccess()


async def test_raising_fails_the_whole_job_and_keeps_its_payload() -> None:
    async def explode(payload: Any) -> list[object]:
        raise OSError("disk full")

    outcome = await run_task(explode, ITEMS)
    assert outcome == TaskFailure("OSError: disk full")
    assert not outcome.has_replacement


class Flag(TaskHandler):
    IDENTIFIER = "flag"
    ok: bool

    async def run(self, ctx: WorkerContext) -> object:
        return self.ok


@pytest.mark.parametrize("handler", [Flag, lambda payload: False])
async def test_returning_false_is_a_success(handler: object) -> None:
    assert await run_task(handler, {"ok": False}, identifier="flag") == TaskSuccess()
