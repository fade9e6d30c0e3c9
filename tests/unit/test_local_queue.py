"""``LocalQueue`` on its own: fetch order, low-water refills, TTL, refetch delay and the
hand-back of jobs never started (no database: hand-backs are recorded)."""

from __future__ import annotations

import dataclasses

import pytest

from graphile_worker_cli.job import Job
from graphile_worker_cli.worker.events import NoEvents
from graphile_worker_cli.worker.local_queue import LocalQueue
from tests.helpers.context import make_job


class RecordedEvents(NoEvents):
    def __init__(self) -> None:
        self.returned: list[int] = []
        self.delays: list[tuple[float, int]] = []
        self.delays_over: list[bool] = []
        self.modes: list[tuple[str, str]] = []

    def queue_returned(self, count: int) -> None:
        self.returned.append(count)

    def refetch_delay_start(self, delay: float, asked: int) -> None:
        self.delays.append((delay, asked))

    def refetch_delay_over(self, aborted: bool) -> None:
        self.delays_over.append(aborted)

    def queue_mode_change(self, old: str, new: str) -> None:
        self.modes.append((old, new))


def jobs(*ids: int) -> list[Job]:
    return [dataclasses.replace(make_job(), id=job_id) for job_id in ids]


def make_queue(
    size: int = 10, *, ttl: float = 60.0, refetch_delay: float = 0.0, jitter: float = 1.0,
    threshold: int = 0, max_abort: int | None = None, fraction: float = 1.0,
) -> tuple[LocalQueue, list[list[int]], RecordedEvents]:
    given_back: list[list[int]] = []
    events = RecordedEvents()
    queue = LocalQueue(
        size, ttl=ttl, refetch_delay=refetch_delay, give_back=given_back.append,
        events=events, jitter=lambda: jitter, refetch_delay_threshold=threshold,
        refetch_delay_max_abort_threshold=max_abort, fraction=lambda: fraction,
    )
    return queue, given_back, events


def test_jobs_leave_in_fetch_order() -> None:
    queue, _, _ = make_queue()
    assert not queue and len(queue) == 0
    queue.add(jobs(1, 2), now=0.0)
    queue.add(jobs(3), now=1.0)
    assert len(queue) == 3 and queue.job_ids() == [1, 2, 3]
    assert [queue.pop().id for _ in range(2)] == [1, 2]
    assert [job.id for job in [queue.next_job()] if job] == [3]
    assert not queue and queue.next_job() is None


def test_an_empty_queue_asks_for_a_full_batch_a_partial_one_for_what_is_wanted() -> None:
    queue, _, _ = make_queue(size=10)
    assert queue.batch_size(3) == 10
    assert queue.batch_size(12) == 12
    queue.add(jobs(1), now=0.0)
    assert queue.batch_size(3) == 3
    assert queue.room() == 9


def test_without_a_queue_a_fetch_asks_for_what_is_wanted() -> None:
    queue, _, _ = make_queue(size=0)
    assert queue.batch_size(4) == 4
    assert make_queue(size=-3)[0].size == 0


def test_refills_start_at_the_low_water_mark_and_only_with_demand() -> None:
    queue, _, _ = make_queue(size=10)
    queue.add(jobs(*range(1, 7)), now=0.0)  # 6 > half of 10
    assert not queue.wants_refill(demand=5)
    queue.pop()  # 5: at the mark
    assert queue.wants_refill(demand=5)
    assert not queue.wants_refill(demand=0)


def test_jobs_past_the_ttl_are_handed_back_and_refills_pause_until_it_runs_dry() -> None:
    queue, given_back, events = make_queue(size=10, ttl=5.0)
    queue.add(jobs(1, 2), now=0.0)
    queue.add(jobs(3), now=3.0)
    assert queue.next_expiry() == 5.0
    assert queue.expire(now=4.9) == 0 and given_back == []
    assert queue.expire(now=5.0) == 2
    assert given_back == [[1, 2]] and events.returned == [2]
    assert queue.job_ids() == [3] and queue.next_expiry() == 8.0
    assert not queue.wants_refill(demand=10)  # jobs are not flowing
    queue.add(jobs(4), now=6.0)  # topped up while not empty: still paused
    assert not queue.wants_refill(demand=10)
    queue.pop()
    queue.pop()
    queue.add(jobs(5), now=7.0)  # a fetch into the empty queue
    assert queue.wants_refill(demand=10)


def test_an_empty_queue_has_no_expiry() -> None:
    queue, _, _ = make_queue()
    assert queue.next_expiry() is None
    assert queue.expire(now=1e9) == 0


def test_shutdown_hands_back_everything_queued() -> None:
    queue, given_back, events = make_queue()
    queue.hand_back_all()
    assert given_back == [] and events.returned == []
    queue.add(jobs(7, 8, 9), now=0.0)
    queue.hand_back_all()
    assert given_back == [[7, 8, 9]] and events.returned == [3]
    assert not queue


def test_a_short_fetch_starts_the_jittered_refetch_delay() -> None:
    queue, _, events = make_queue(size=10, refetch_delay=2.0, jitter=1.25)
    assert queue.delay_left(now=0.0) == 0.0
    queue.fetch_came_back_short(asked=10, now=100.0)
    assert events.delays == [(2.5, 10)]
    assert queue.delay_left(now=101.0) == pytest.approx(1.5)
    assert queue.delay_left(now=103.0) == 0.0


@pytest.mark.parametrize(("size", "delay"), [(0, 2.0), (10, 0.0)])
def test_no_refetch_delay_without_a_queue_or_a_delay(size: int, delay: float) -> None:
    queue, _, events = make_queue(size=size, refetch_delay=delay)
    queue.fetch_came_back_short(asked=5, now=100.0)
    assert queue.delay_left(now=100.0) == 0.0 and events.delays == []


def test_the_default_jitter_stays_within_half_and_one_and_a_half() -> None:
    queue = LocalQueue(10, ttl=60.0, refetch_delay=1.0, give_back=lambda ids: None,
                       events=NoEvents())
    for _ in range(50):
        queue.fetch_came_back_short(asked=10, now=0.0)
        assert 0.5 <= queue.delay_left(now=0.0) <= 1.5


def test_only_a_fetch_at_or_below_the_threshold_starts_the_refetch_delay() -> None:
    queue, _, events = make_queue(size=10, refetch_delay=1.0, threshold=2)
    queue.fetch_came_back_short(asked=10, now=0.0, got=3)
    assert queue.delay_left(now=0.0) == 0.0 and events.delays == []
    queue.fetch_came_back_short(asked=10, now=0.0, got=2)
    assert queue.delay_left(now=0.0) == 1.0 and events.delays == [(1.0, 10)]


def test_by_default_only_an_empty_fetch_starts_the_refetch_delay() -> None:
    queue, _, events = make_queue(size=10, refetch_delay=1.0)
    queue.fetch_came_back_short(asked=10, now=0.0, got=1)
    assert events.delays == []
    queue.fetch_came_back_short(asked=10, now=0.0, got=0)
    assert events.delays == [(1.0, 10)]


def test_the_end_of_the_refetch_delay_is_reported_once() -> None:
    queue, _, events = make_queue(size=10, refetch_delay=1.0)
    queue.fetch_came_back_short(asked=10, now=0.0)
    assert queue.delay_left(now=0.5) == 0.5 and events.delays_over == []
    assert queue.delay_left(now=1.0) == 0.0 and queue.delay_left(now=2.0) == 0.0
    assert events.delays_over == [False]


def test_enough_announced_jobs_cut_the_refetch_delay_short() -> None:
    # A share of 0.5 of a maximum of 4: the second announced pair ends the delay.
    queue, _, events = make_queue(size=10, refetch_delay=5.0, max_abort=4, fraction=0.5)
    assert not queue.pulse(3)  # no delay running: nothing to cut
    queue.fetch_came_back_short(asked=10, now=0.0)
    assert not queue.pulse(1)
    assert queue.delay_left(now=0.0) == 5.0
    assert queue.pulse(1)
    assert queue.delay_left(now=0.0) == 0.0 and events.delays_over == [True]
    assert not queue.pulse(10)  # already over


def test_the_abort_maximum_defaults_to_five_times_the_queue_size() -> None:
    queue, _, _ = make_queue(size=10, refetch_delay=5.0)
    assert queue.max_abort_threshold == 50
    queue.fetch_came_back_short(asked=10, now=0.0)
    assert not queue.pulse(49)
    assert queue.pulse(1)


def test_a_zero_share_means_notifications_never_cut_the_delay() -> None:
    queue, _, _ = make_queue(size=10, refetch_delay=5.0, fraction=0.0)
    queue.fetch_came_back_short(asked=10, now=0.0)
    assert not queue.pulse(10**6)


def test_modes_follow_the_reference() -> None:
    queue, _, events = make_queue(size=10, ttl=5.0)
    assert queue.mode == "STARTING"
    queue.start()
    queue.add(jobs(1, 2), now=0.0)
    queue.pop()
    queue.add(jobs(3), now=0.0)  # still waiting: no change
    queue.next_job()
    queue.next_job()
    queue.add(jobs(4), now=0.0)
    queue.expire(now=10.0)
    queue.add(jobs(5), now=11.0)
    queue.hand_back_all()
    queue.add(jobs(6), now=12.0)  # released: no more changes
    assert events.modes == [
        ("STARTING", "POLLING"), ("POLLING", "WAITING"), ("WAITING", "POLLING"),
        ("POLLING", "WAITING"), ("WAITING", "TTL_EXPIRED"), ("TTL_EXPIRED", "WAITING"),
        ("WAITING", "RELEASED"),
    ]


def test_without_a_queue_there_are_no_modes() -> None:
    queue, _, events = make_queue(size=0)
    queue.start()
    queue.add(jobs(1), now=0.0)
    queue.pop()
    assert events.modes == []


def test_the_queued_jobs_of_each_task_are_counted_through_every_way_out() -> None:
    # Per-task limits read these counts before each fetch instead of scanning the queue.
    queue, given_back, _ = make_queue(ttl=5.0)
    queue.add([dataclasses.replace(job, task_id=1) for job in jobs(1, 2)], now=0.0)
    queue.count_tasks()  # counts what is queued already
    queue.add([dataclasses.replace(job, task_id=task_id)
               for job, task_id in zip(jobs(3, 4, 5, 6, 7), [2, 1, 2, 2, 1], strict=True)],
              now=4.0)
    assert (queue.queued_of(1), queue.queued_of(2), queue.queued_of(9)) == (4, 3, 0)
    started = queue.next_job_where(lambda job: job.task_id == 2)
    assert started is not None and started.id == 3
    assert queue.take(4) is not None
    assert queue.queued_of(1) == 3 and queue.queued_of(2) == 2
    assert queue.expire(now=5.0) == 2  # jobs 1 and 2, both of task 1
    assert given_back == [[1, 2]]
    assert queue.queued_of(1) == 1 and queue.queued_of(2) == 2
    assert queue.next_job() is not None  # job 5, of task 2
    assert queue.queued_of(2) == 1
    queue.hand_back_all()
    assert queue.queued_of(1) == queue.queued_of(2) == 0
