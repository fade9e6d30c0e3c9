"""Per-task concurrency (issue 17 item 6), the pure parts: how ``max_concurrency`` is
declared and checked, the worker's ``task_max_concurrency`` setting, and the plan of each
fetch (``worker.task_limits``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from graphile_worker_cli import BatchTaskHandler, TaskHandler, config, define_task, task
from graphile_worker_cli.errors import ConfigError, TaskLoadError
from graphile_worker_cli.job import Job
from graphile_worker_cli.worker import WorkerOptions
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


# -- task_max_concurrency, the worker's setting ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "limits"),
    [
        ({"export": 1}, {"export": 1}),                      # TOML table, code
        (["export=1", "emails/send=2"], {"export": 1, "emails/send": 2}),  # repeated flag
        ("export=1, emails/send=2", {"export": 1, "emails/send": 2}),     # environment
        ('{"export": 3}', {"export": 3}),                    # environment, JSON
    ],
)
def test_the_setting_reads_each_spelling(value: Any, limits: dict[str, int]) -> None:
    assert config.Settings(task_max_concurrency=value).task_max_concurrency == limits


def test_the_setting_reaches_worker_processes_through_the_environment() -> None:
    # gw run --processes N hands its settings to each child as GW_ variables.
    limits = {"export": 1, "emails/send,odd=name": 2}
    text = config.env_text(limits)
    assert config.read_environment({"GW_TASK_MAX_CONCURRENCY": text}) == {
        "task_max_concurrency": limits
    }
    assert config.read_environment({"GW_TASK_MAX_CONCURRENCY": config.env_text({})}) == {
        "task_max_concurrency": {}
    }


@pytest.mark.parametrize("bad", ["export=0", "export", ["export=two"], {"export": True}, "=1"])
def test_a_bad_setting_names_the_option_and_what_was_expected(bad: Any) -> None:
    with pytest.raises(ConfigError) as raised:
        config.load_settings(None, {"task_max_concurrency": bad})
    assert raised.value.message.startswith(
        "option --task-max-concurrency: expected task identifiers with an integer >= 1 each"
    )


def test_the_setting_wins_over_the_task_s_own_limit_and_must_name_a_loaded_task() -> None:
    @task("slow", max_concurrency=1)
    async def slow(payload: Any) -> None: ...

    @task("fast")
    async def fast(payload: Any) -> None: ...

    options = WorkerOptions(database_url="postgres://localhost/x").define_jobs(slow, fast)
    assert options.task_limits() == {"slow": 1}
    options.task_max_concurrency = {"slow": 3, "fast": 2}
    assert options.task_limits() == {"slow": 3, "fast": 2}
    options.validate()
    options.task_max_concurrency = {"slwo": 1}
    with pytest.raises(ConfigError) as raised:
        options.validate()
    assert raised.value.message == (
        'task_max_concurrency names task "slwo", which this worker does not have '
        "(its tasks: fast, slow)"
    )
    options.task_max_concurrency = {"slow": 0}
    with pytest.raises(ConfigError, match='task "slow": expected an integer >= 1, got 0'):
        options.validate()
