"""Per-task concurrency (issue 17 item 6), the pure parts: how ``max_concurrency`` is
declared and checked, the worker's ``task_max_concurrency`` setting, and the plan of each
fetch (``worker.task_limits``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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


def _queued(*jobs: Job) -> Callable[[int], int]:
    """How many of ``jobs`` (waiting in the local queue) each task has."""
    return lambda task_id: sum(job.task_id == task_id for job in jobs)


def _running(limits: TaskLimits, *task_ids: int) -> None:
    for job in _held(*task_ids):
        limits.started(job)


def test_a_task_at_its_limit_is_left_out_of_the_fetch() -> None:
    limits = TaskLimits({SLOW: 1}, [SLOW, FAST, OTHER])
    _running(limits, SLOW)
    assert limits.plan(_queued(), batch=4) == FetchPlan([FAST, OTHER], {}, 4)


def test_a_limited_task_with_room_is_capped_at_its_room() -> None:
    limits = TaskLimits({SLOW: 3}, [SLOW, FAST])
    assert limits.plan(_queued(), batch=4) == FetchPlan([SLOW, FAST], {SLOW: 3}, 4)
    _running(limits, SLOW)
    assert limits.plan(_queued(), batch=4) == FetchPlan([SLOW, FAST], {SLOW: 2}, 4)
    # queued jobs count as held too (no buffer yet: none of its jobs has run)
    assert limits.plan(_queued(*_held(SLOW)), batch=4) == FetchPlan([SLOW, FAST], {SLOW: 1}, 4)


def test_room_as_large_as_the_batch_caps_nothing() -> None:
    limits = TaskLimits({SLOW: 10}, [SLOW, FAST])
    _running(limits, SLOW)
    assert limits.plan(_queued(), batch=4) == FetchPlan([SLOW, FAST], {}, 4)
    assert limits.plan(_queued(), batch=9) == FetchPlan([SLOW, FAST], {}, 9)
    assert limits.plan(_queued(), batch=10) == FetchPlan([SLOW, FAST], {SLOW: 9}, 10)


def test_running_jobs_over_the_limit_still_leave_the_task_out() -> None:
    limits = TaskLimits({SLOW: 1}, [SLOW, FAST])
    _running(limits, SLOW, SLOW)
    plan = limits.plan(_queued(), batch=4)
    assert plan is not None and plan.task_ids == [FAST]


def test_nothing_to_fetch_when_every_task_is_at_its_limit() -> None:
    both = TaskLimits({SLOW: 1, FAST: 2}, [SLOW, FAST])
    _running(both, SLOW, FAST)
    assert both.plan(_queued(), batch=4) == FetchPlan([FAST], {}, 1)
    _running(both, FAST)
    assert both.plan(_queued(), batch=4) is None


def test_a_queued_job_of_a_task_at_its_limit_cannot_start_until_one_ends() -> None:
    limits = TaskLimits({SLOW: 2}, [SLOW, FAST])
    first, second, third = _held(SLOW, SLOW, SLOW)
    (fast,) = _held(FAST)
    limits.started(first)
    assert limits.can_start(second)
    limits.started(second)
    assert not limits.can_start(third) and limits.can_start(fast)
    assert limits.at_limit() == [SLOW]
    limits.ended(first)
    assert limits.can_start(third) and limits.at_limit() == []


def test_a_task_found_dry_is_no_reason_to_fetch_until_there_is_news() -> None:
    limits = TaskLimits({SLOW: 2}, [SLOW, FAST, OTHER])
    plan = limits.plan(_queued(), batch=4)
    assert plan == FetchPlan([SLOW, FAST, OTHER], {SLOW: 2}, 4)
    # The fetch took the two SLOW jobs it had room for and found nothing else.
    limits.fetched(plan, _held(SLOW, SLOW), considered=3)
    _running(limits, SLOW, SLOW)
    assert limits.dry() == {FAST, OTHER}  # SLOW was capped: more of it may wait
    assert limits.plan(_queued(), batch=4) is None  # SLOW at its limit, the others dry
    # A SLOW job ends: the fetch is for its room alone, the dry tasks riding along.
    limits.ended(_held(SLOW)[0])
    assert limits.plan(_queued(), batch=4) == FetchPlan([SLOW, FAST, OTHER], {}, 1)
    assert limits.forget_dry() and not limits.forget_dry()
    limits.started(_held(SLOW)[0])
    assert limits.plan(_queued(), batch=4) == FetchPlan([FAST, OTHER], {}, 4)


def test_a_full_fetch_keeps_what_it_did_not_see_dry() -> None:
    limits = TaskLimits({SLOW: 1}, [SLOW, FAST, OTHER])
    plan = FetchPlan([SLOW, FAST, OTHER], {}, 4)
    limits.fetched(plan, [], considered=0)
    assert limits.dry() == {SLOW, FAST, OTHER}
    # A full batch (as many considered as asked for): the tasks it got jobs of are not dry.
    limits.fetched(plan, _held(FAST, FAST, FAST, SLOW), considered=4)
    assert limits.dry() == {OTHER}


def test_a_task_whose_jobs_run_quickly_gets_a_buffer_in_the_local_queue() -> None:
    limits = TaskLimits({SLOW: 23}, [SLOW, FAST], concurrency=24, queue_size=500)
    assert limits.buffer(SLOW) == 0  # none of its jobs has run yet
    jobs = _held(*[SLOW] * 23)
    for job in jobs:
        limits.started(job)
    for job in jobs:
        limits.ended(job)
    # quick jobs: its share of the queue, 500 * 23 / 24
    assert limits.buffer(SLOW) == 479
    for job in jobs:
        limits.started(job)
    held = [dataclasses.replace(job, id=1000 + job.id) for job in _held(*[SLOW] * 300)]
    limits.fetched(FetchPlan([FAST], {}, 4), [], considered=0)  # FAST dry
    # More than half the buffer held: no fetch; at half, one for the buffer's room.
    assert limits.plan(_queued(*held), batch=500) is None
    plan = limits.plan(_queued(*held[:239]), batch=500)
    assert plan == FetchPlan([SLOW, FAST], {}, 479 - 239)
    assert not limits.can_start(held[0])


def test_a_slow_task_gets_no_buffer() -> None:
    limits = TaskLimits({SLOW: 1}, [SLOW, FAST], concurrency=4, queue_size=10)
    (job,) = _held(SLOW)
    limits.started(job)
    limits._started_at[job.id] -= 2.0  # it ran for two seconds
    limits.ended(job)
    assert limits.buffer(SLOW) == 0


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
