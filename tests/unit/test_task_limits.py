"""Per-task concurrency (issue 17 item 6), the pure parts: how ``max_concurrency`` is
declared and checked, and the plan of each fetch (``worker.task_limits``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from graphile_worker_cli import BatchTaskHandler, TaskHandler, define_task, task
from graphile_worker_cli.errors import TaskLoadError
from graphile_worker_cli.job import Job
from graphile_worker_cli.worker.task_limits import FetchPlan, TaskLimits
from tests.helpers.context import make_job

SLOW, FAST, OTHER = 1, 2, 3


def _held(*task_ids: int) -> list[Job]:
    return [dataclasses.replace(make_job(), id=n, task_id=task_id)
            for n, task_id in enumerate(task_ids, 1)]


def test_the_decorator_and_both_handler_classes_declare_a_limit() -> None:
    @task("slow", max_concurrency=2)
    async def slow(payload: Any) -> None: ...

    class Report(TaskHandler):
        IDENTIFIER = "report"
        MAX_CONCURRENCY = 1

        async def run(self, ctx: Any) -> None: ...

    class Index(BatchTaskHandler):
        IDENTIFIER = "index"
        MAX_CONCURRENCY = 3

        @classmethod
        async def run_batch(cls, items: list[Any], ctx: Any) -> list[None]:
            return [None] * len(items)

    @task(batch=True)
    async def plain(payload: Any) -> None: ...

    assert define_task(slow).max_concurrency == 2
    assert define_task(Report).max_concurrency == 1
    assert define_task(Index).max_concurrency == 3
    assert define_task(plain).max_concurrency is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_limit_that_is_not_a_whole_number_of_at_least_one_fails_at_load(bad: Any) -> None:
    @task("slow", max_concurrency=bad)
    async def slow(payload: Any) -> None: ...

    with pytest.raises(TaskLoadError) as raised:
        define_task(slow)
    message = raised.value.message
    assert "max_concurrency must be a whole number of at least 1" in message
    assert repr(bad) in message and "slow" in message


def test_a_bad_class_limit_names_the_class() -> None:
    class Report(TaskHandler):
        IDENTIFIER = "report"
        MAX_CONCURRENCY = 0

        async def run(self, ctx: Any) -> None: ...

    with pytest.raises(TaskLoadError, match=r"Report: max_concurrency .* not 0"):
        define_task(Report)


def test_no_limit_below_the_concurrency_means_no_limits_at_all() -> None:
    # The worker then fetches exactly as it does without the feature.
    assert TaskLimits.of({}, [SLOW, FAST], concurrency=4) is None
    assert TaskLimits.of({SLOW: 4, FAST: 9}, [SLOW, FAST], concurrency=4) is None
    limits = TaskLimits.of({SLOW: 1, FAST: 4}, [SLOW, FAST], concurrency=4)
    assert limits is not None and limits.limits == {SLOW: 1}


def test_a_saturated_task_is_left_out_of_the_fetch() -> None:
    limits = TaskLimits({SLOW: 1}, [SLOW, FAST, OTHER])
    plan = limits.plan(_held(SLOW, FAST), batch=4)
    assert plan == FetchPlan([FAST, OTHER], {})


def test_a_limited_task_with_room_is_capped_at_its_room() -> None:
    limits = TaskLimits({SLOW: 3}, [SLOW, FAST])
    assert limits.plan(_held(SLOW, FAST, FAST), batch=4) == FetchPlan([SLOW, FAST], {SLOW: 2})
    assert limits.plan([], batch=4) == FetchPlan([SLOW, FAST], {SLOW: 3})


def test_room_as_large_as_the_batch_caps_nothing() -> None:
    limits = TaskLimits({SLOW: 10}, [SLOW, FAST])
    assert limits.plan(_held(SLOW), batch=4) == FetchPlan([SLOW, FAST], {})
    assert limits.plan(_held(SLOW), batch=9) == FetchPlan([SLOW, FAST], {})
    assert limits.plan(_held(SLOW), batch=10) == FetchPlan([SLOW, FAST], {SLOW: 9})


def test_held_jobs_over_the_limit_still_leave_the_task_out() -> None:
    limits = TaskLimits({SLOW: 1}, [SLOW, FAST])
    assert limits.plan(_held(SLOW, SLOW), batch=4).task_ids == [FAST]


def test_saturated_only_when_every_task_is_at_its_limit() -> None:
    both = TaskLimits({SLOW: 1, FAST: 2}, [SLOW, FAST])
    assert not both.saturated(_held(SLOW, FAST))
    assert both.saturated(_held(SLOW, FAST, FAST))
    one = TaskLimits({SLOW: 1}, [SLOW, FAST])
    assert not one.saturated(_held(SLOW, SLOW, SLOW))


def test_a_fetch_that_took_a_capped_task_s_whole_room_asks_to_look_again() -> None:
    plan = FetchPlan([SLOW, FAST], {SLOW: 2})
    assert plan.filled(_held(SLOW, SLOW))
    assert plan.filled(_held(FAST, SLOW, SLOW))
    assert not plan.filled(_held(SLOW, FAST))
    assert not plan.filled([])
    assert not FetchPlan([SLOW, FAST]).filled(_held(SLOW, SLOW))
