"""``Slots``: slot accounting and fetch demand, without a database."""

from __future__ import annotations

import asyncio
import dataclasses

from graphile_worker_cli.context import AbortSignal
from graphile_worker_cli.worker.slots import Running, Slots
from tests.helpers.context import make_job


async def running(job_id: int) -> Running:
    task = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    await task
    return Running(dataclasses.replace(make_job(), id=job_id), task, AbortSignal())


def test_a_new_worker_wants_a_full_set_of_jobs() -> None:
    slots = Slots(4)
    assert slots.demand == 4 and slots.free() == 4 and slots.running_ids() == []
    assert not slots.wakeup.is_set()


async def test_running_jobs_take_slots_until_they_end() -> None:
    slots = Slots(3)
    slots.occupy(await running(1))
    slots.occupy(await running(2))
    assert slots.free() == 1 and slots.running_ids() == [1, 2]
    slots.vacate(1)
    slots.vacate(1)  # ending twice changes nothing
    assert slots.free() == 2 and list(slots.running) == [2]


def test_a_fetch_consumes_the_demand_and_nudges_raise_it_up_to_the_concurrency() -> None:
    slots = Slots(5)
    slots.consume()
    assert slots.demand == 0
    slots.more_jobs()
    assert slots.demand == 1 and slots.wakeup.is_set()
    slots.wakeup.clear()
    slots.more_jobs(3)
    slots.more_jobs(30)
    assert slots.demand == 5 and slots.wakeup.is_set()


def test_a_new_connection_wakes_the_loop_a_due_poll_does_not() -> None:
    slots = Slots(5)
    slots.consume()
    slots.restore()
    assert slots.demand == 5 and not slots.wakeup.is_set()
    slots.consume()
    slots.anything()
    assert slots.demand == 5 and slots.wakeup.is_set()


def test_landed_outcomes_of_named_queue_jobs_raise_the_demand_once() -> None:
    slots = Slots(10)
    slots.consume()
    slots.holds_queue(7)
    slots.holds_queue(8)
    assert slots.serial_unsettled() == 2
    slots.outcomes_landed([7, 99])  # 99 ran without a named queue
    assert slots.demand == 1 and slots.wakeup.is_set() and slots.serial_unsettled() == 1
    slots.outcomes_landed([7])
    assert slots.demand == 1
    slots.outcomes_landed([8])
    assert slots.demand == 2 and slots.serial_unsettled() == 0


def test_landed_outcomes_always_wake_the_loop_and_cap_the_demand() -> None:
    slots = Slots(2)
    slots.outcomes_landed([1])
    assert slots.wakeup.is_set() and slots.demand == 2
    for job_id in (1, 2, 3):
        slots.holds_queue(job_id)
    slots.outcomes_landed([1, 2, 3])
    assert slots.demand == 2


def test_announced_jobs_tell_the_fetch_loop_after_raising_the_demand() -> None:
    slots = Slots(5)
    slots.consume()
    seen: list[int] = []
    slots.on_announced = lambda: seen.append(slots.demand)
    slots.announced(2)
    slots.more_jobs()  # a finished job: no spare fetch
    slots.anything()
    slots.outcomes_landed([1])
    assert seen == [2]
