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

    def queue_returned(self, count: int) -> None:
        self.returned.append(count)

    def refetch_delay_start(self, delay: float, asked: int) -> None:
        self.delays.append((delay, asked))


def jobs(*ids: int) -> list[Job]:
    return [dataclasses.replace(make_job(), id=job_id) for job_id in ids]


def make_queue(
    size: int = 10, *, ttl: float = 60.0, refetch_delay: float = 0.0, jitter: float = 1.0
) -> tuple[LocalQueue, list[list[int]], RecordedEvents]:
    given_back: list[list[int]] = []
    events = RecordedEvents()
    queue = LocalQueue(
        size, ttl=ttl, refetch_delay=refetch_delay, give_back=given_back.append,
        events=events, jitter=lambda: jitter,
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
