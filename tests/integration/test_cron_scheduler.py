"""The cron scheduler on a real database, driven by a MockClock (no real minutes waited)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import db
from graphile_worker_cli.cron import Crontab, CrontabTimer, MockClock, parse_crontab
from graphile_worker_cli.cron.scheduler import run_scheduler

SCHEMA = "graphile_worker"
T0 = datetime(2030, 1, 6, 12, 0, 30, tzinfo=UTC)  # a Sunday, 30 s into the minute


def at(hour: int, minute: int, day: int = 6) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(db_url, min_size=1, max_size=3)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def scheduling(
    pool: asyncpg.Pool, crontabs: list[Crontab], clock: MockClock
) -> AsyncIterator[asyncio.Task[None]]:
    """Run a scheduler until the block ends; on entry it has registered and backfilled."""
    stop = asyncio.Event()
    before = clock.sleepers
    task = asyncio.create_task(run_scheduler(pool, SCHEMA, crontabs, stop=stop, clock=clock))
    try:
        await clock.wait_for_sleepers(before + 1)
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def step(clock: MockClock, to: datetime, sleepers: int = 1) -> None:
    """Move the clock and wait until every scheduler has done its work and sleeps again."""
    clock.set(to)
    await clock.wait_for_sleepers(sleepers)


async def cron_jobs(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "select t.identifier as task, p.payload, j.run_at, j.queue_name, j.priority, "
        "j.max_attempts, j.key, j.revision "
        "from graphile_worker.jobs j join graphile_worker._private_jobs p using (id) "
        "join graphile_worker._private_tasks t on t.id = p.task_id "
        "order by j.run_at, t.identifier"
    )
    jobs = []
    for row in rows:
        job = dict(row)
        job["payload"] = json.loads(row["payload"])
        jobs.append(job)
    return jobs


def stamps(jobs: list[dict[str, Any]], task: str | None = None) -> list[tuple[str, bool]]:
    return [
        (job["payload"]["_cron"]["ts"], job["payload"]["_cron"]["backfilled"])
        for job in jobs
        if task is None or job["task"] == task
    ]


async def set_known(
    conn: asyncpg.Connection, identifier: str, known_since: datetime,
    last_execution: datetime | None,
) -> None:
    await conn.execute(
        "insert into graphile_worker._private_known_crontabs values ($1, $2, $3)",
        identifier, known_since, last_execution,
    )


# -- registration and backfill --------------------------------------------------------------


async def test_new_item_is_registered_and_never_backfilled(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    clock = MockClock(T0)
    items = parse_crontab("* * * * * tick ?fill=1w")
    async with scheduling(pool, items, clock):
        row = await conn.fetchrow("select * from graphile_worker._private_known_crontabs")
        assert row is not None
        assert (row["identifier"], row["known_since"], row["last_execution"]) == ("tick", T0, None)
        assert await cron_jobs(conn) == []
        await step(clock, at(12, 1))
        jobs = await cron_jobs(conn)
    assert stamps(jobs) == [(iso(at(12, 1)), False)]
    assert jobs[0]["run_at"] == at(12, 1)


async def test_backfill_fills_due_minutes_of_the_fill_period_only(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    # Known since 3 hours ago, last run 2 hours ago, fill 1h: the last hour is filled.
    await set_known(conn, "every5", T0 - timedelta(hours=3), at(10, 0))
    # Last run 20 minutes ago: filled from there on, not from an hour ago.
    await set_known(conn, "recent", T0 - timedelta(hours=3), at(11, 40))
    items = parse_crontab(
        "*/5 * * * * report ?id=every5&fill=1h {kind: 'five'}\n"
        "*/5 * * * * report ?id=recent&fill=1h\n"
    )
    clock = MockClock(T0)
    async with scheduling(pool, items, clock):
        jobs = await cron_jobs(conn)
    five = [j for j in jobs if j["payload"].get("kind") == "five"]
    recent = [j for j in jobs if "kind" not in j["payload"]]
    assert stamps(five) == [(iso(at(11, m)), True) for m in range(5, 60, 5)] + [
        (iso(at(12, 0)), True)
    ]
    assert [j["run_at"] for j in five] == [at(11, m) for m in range(5, 60, 5)] + [at(12, 0)]
    assert stamps(recent) == [(iso(at(11, m)), True) for m in (45, 50, 55)] + [
        (iso(at(12, 0)), True)
    ]
    last = await conn.fetch(
        "select identifier, last_execution from graphile_worker._private_known_crontabs "
        "order by identifier"
    )
    assert [(r["identifier"], r["last_execution"]) for r in last] == [
        ("every5", at(12, 0)), ("recent", at(12, 0)),
    ]


async def test_backfill_is_keyed_by_id_not_by_task_identifier(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    # A row named after the task exists; the item's id is new, so nothing is backfilled.
    await set_known(conn, "mailer", T0 - timedelta(hours=3), at(10, 0))
    await set_known(conn, "known_id", T0 - timedelta(hours=3), at(11, 57))
    items = parse_crontab(
        "* * * * * mailer ?id=new_id&fill=1h {which: 'new'}\n"
        "* * * * * mailer ?id=known_id&fill=1h {which: 'known'}\n"
    )
    clock = MockClock(T0)
    async with scheduling(pool, items, clock):
        jobs = await cron_jobs(conn)
        known_since = await conn.fetchval(
            "select known_since from graphile_worker._private_known_crontabs "
            "where identifier = 'new_id'"
        )
    assert known_since == T0
    assert [(j["payload"]["which"], *stamps([j])[0]) for j in jobs] == [
        ("known", iso(at(11, 58)), True),
        ("known", iso(at(11, 59)), True),
        ("known", iso(at(12, 0)), True),
    ]


# -- ticks, payloads, options ---------------------------------------------------------------


async def test_tick_adds_job_with_payload_and_options(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    items = parse_crontab(
        "* * * * * send/digest ?max=3&queue=mail&priority=-2&jobKey=digest"
        " {to: 'ops', _cron: 'overwritten'}"
    )
    clock = MockClock(T0)
    async with scheduling(pool, items, clock):
        await step(clock, at(12, 1))
        first = await cron_jobs(conn)
        await step(clock, at(12, 2))
        second = await cron_jobs(conn)
    assert len(first) == 1
    job = first[0]
    assert job["task"] == "send/digest"
    assert job["payload"] == {"to": "ops", "_cron": {"ts": iso(at(12, 1)), "backfilled": False}}
    assert (job["queue_name"], job["priority"], job["max_attempts"], job["key"]) == (
        "mail", -2, 3, "digest",
    )
    # jobKey (mode replace): the second tick replaced the same job, run_at included.
    assert len(second) == 1
    assert second[0]["revision"] == 1
    assert second[0]["run_at"] == at(12, 2)


async def test_day_of_week_zero_fires_on_sunday_in_utc_whatever_the_local_zone(
    pool: asyncpg.Pool, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2030-01-06 is a Sunday in UTC; in Pacific/Kiritimati (UTC+14) it is already Monday.
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    try:
        items = parse_crontab(
            "1 12 * * 0 on_sunday\n1 12 * * 1 on_monday\n"
            "2 2 * * 1 local_monday ?tz=Pacific/Kiritimati\n"
        )
        clock = MockClock(T0)
        async with scheduling(pool, items, clock):
            await step(clock, at(12, 1))
            await step(clock, at(12, 2))
            jobs = await cron_jobs(conn)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert [(j["task"], j["run_at"]) for j in jobs] == [
        ("on_sunday", at(12, 1)), ("local_monday", at(12, 2)),
    ]
    assert os.environ.get("TZ") is None


# -- late, early and jumping clocks ---------------------------------------------------------


async def test_late_timer_schedules_every_minute_since_start_fill_or_not(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    items = parse_crontab(
        "* * * * * filled ?fill=5m\n* * * * * unfilled\n5 12 * * * daily_at_1205\n"
    )
    clock = MockClock(T0)
    async with scheduling(pool, items, clock):
        await step(clock, at(12, 1))
        await step(clock, at(12, 11) + timedelta(seconds=30))  # the timer fires 10.5 min late
        jobs = await cron_jobs(conn)
        await step(clock, at(12, 12))
        after = await cron_jobs(conn)
    # As the reference: each missed minute is an ordinary tick, fill or not (fill is only
    # for the downtime before a start).
    every_minute = [(iso(at(12, m)), False) for m in range(1, 12)]
    assert stamps(jobs, "filled") == every_minute
    assert stamps(jobs, "unfilled") == every_minute
    assert stamps(jobs, "daily_at_1205") == [(iso(at(12, 5)), False)]
    assert stamps(after, "unfilled") == [*every_minute, (iso(at(12, 12)), False)]


async def test_slow_backfill_at_start_does_not_count_as_lateness(
    pool: asyncpg.Pool, conn: asyncpg.Connection, db_url: str
) -> None:
    await set_known(conn, "slow", T0 - timedelta(hours=3), at(11, 55))
    items = parse_crontab("* * * * * slow ?fill=1h\n* * * * * fresh\n")
    blocker = await asyncpg.connect(db_url)
    hold = blocker.transaction()
    await hold.start()
    await blocker.execute(
        "select 1 from graphile_worker._private_known_crontabs where identifier = 'slow' "
        "for update"
    )
    clock = MockClock(T0)
    stop = asyncio.Event()
    task = asyncio.create_task(run_scheduler(pool, SCHEMA, items, stop=stop, clock=clock))
    try:
        # The backfill (started at 12:00:30) is stuck behind the lock while 5 minutes pass.
        deadline = asyncio.get_running_loop().time() + 20
        while not await conn.fetchval(
            "select count(*) from pg_stat_activity where datname = current_database() "
            "and wait_event_type = 'Lock'"
        ):
            assert asyncio.get_running_loop().time() < deadline, "backfill never blocked"
            await asyncio.sleep(0.02)
        clock.set(at(12, 5) + timedelta(seconds=30))
        await hold.rollback()
        await clock.wait_for_sleepers(1)
        jobs = await cron_jobs(conn)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await blocker.close()
    since_start = [(iso(at(12, m)), False) for m in range(1, 6)]
    assert stamps(jobs, "slow") == [
        (iso(at(11, 56)), True), (iso(at(11, 57)), True), (iso(at(11, 58)), True),
        (iso(at(11, 59)), True), (iso(at(12, 0)), True), *since_start,
    ]
    assert stamps(jobs, "fresh") == since_start


async def test_backward_jump_and_early_timer_never_schedule_twice(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    items = parse_crontab("* * * * * tick\n")
    clock = MockClock(T0)
    async with scheduling(pool, items, clock):
        await step(clock, at(12, 1))
        await step(clock, at(11, 50))  # the clock goes back 11 minutes
        await step(clock, at(11, 59) + timedelta(seconds=59))
        clock.wake_early()  # a timer that fires before its minute
        await clock.wait_for_sleepers(1)
        assert stamps(await cron_jobs(conn)) == [(iso(at(12, 1)), False)]
        await step(clock, at(12, 2))
        jobs = await cron_jobs(conn)
    assert stamps(jobs) == [(iso(at(12, 1)), False), (iso(at(12, 2)), False)]


async def test_restarts_after_database_error_and_backfills_the_gap(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    items = parse_crontab("* * * * * tick ?fill=5m\n* * * * * nofill\n")
    table = "graphile_worker._private_known_crontabs"
    clock = MockClock(T0)
    async with scheduling(pool, items, clock) as task:
        await step(clock, at(12, 1))
        # The database starts failing every cron statement.
        await conn.execute(f"alter table {table} rename to known_crontabs_away")
        await step(clock, at(12, 2))  # the tick fails; it now waits out its backoff
        await step(clock, at(12, 2) + timedelta(seconds=30))  # the restart fails too
        assert not task.done()
        await conn.execute(
            "alter table graphile_worker.known_crontabs_away rename to _private_known_crontabs"
        )
        await step(clock, at(12, 3))  # restart: backfills 12:02, then ticks 12:03
        assert not task.done()
        jobs = await cron_jobs(conn)
    assert stamps(jobs, "tick") == [
        (iso(at(12, 1)), False), (iso(at(12, 2)), True), (iso(at(12, 3)), False),
    ]
    # Without fill, the failed minute is still recovered: it is only a minute late.
    assert stamps(jobs, "nofill") == [
        (iso(at(12, 1)), False), (iso(at(12, 2)), False), (iso(at(12, 3)), False),
    ]


async def test_survives_its_connections_being_killed(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    items = parse_crontab("* * * * * tick ?fill=5m\n")
    clock = MockClock(T0)
    async with scheduling(pool, items, clock) as task:
        await step(clock, at(12, 1))
        await conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where datname = current_database() and pid <> pg_backend_pid()"
        )
        await step(clock, at(12, 2))  # may fail (then it backs off) or reconnect at once
        await step(clock, at(12, 3))
        assert not task.done()
        jobs = await cron_jobs(conn)
    assert [ts for ts, _ in stamps(jobs)] == [iso(at(12, m)) for m in (1, 2, 3)]


async def test_a_job_the_database_refuses_costs_only_its_own_item_the_minute(
    pool: asyncpg.Pool, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # The database refuses any job of task 'refused' (as it refuses an over-long task name).
    await conn.execute(
        "alter table graphile_worker._private_tasks "
        "add constraint no_refused check (identifier <> 'refused')"
    )
    for identifier in ("good", "refused"):
        await set_known(conn, identifier, T0 - timedelta(hours=1), at(11, 58))
    items = parse_crontab(
        "* * * * * good ?fill=5m\n* * * * * refused ?fill=5m\n*/2 * * * * other\n"
    )
    caplog.set_level(logging.INFO, logger="gw.cron")
    clock = MockClock(T0)
    async with scheduling(pool, items, clock) as task:
        await step(clock, at(12, 1))
        await step(clock, at(12, 2))
        assert not task.done()
        jobs = await cron_jobs(conn)
        refused_row = await conn.fetchval(
            "select last_execution from graphile_worker._private_known_crontabs "
            "where identifier = 'refused'"
        )
        await conn.execute("alter table graphile_worker._private_tasks drop constraint no_refused")
        await step(clock, at(12, 3))
        later = await cron_jobs(conn)
    assert stamps(jobs, "good") == [
        (iso(at(11, 59)), True), (iso(at(12, 0)), True),
        (iso(at(12, 1)), False), (iso(at(12, 2)), False),
    ]
    assert stamps(jobs, "other") == [(iso(at(12, 2)), False)]
    assert stamps(jobs, "refused") == []
    assert refused_row == at(11, 58)  # its minutes were not claimed either
    assert stamps(later, "refused") == [(iso(at(12, 3)), False)]
    refusals = [r.getMessage() for r in caplog.records if "refused its job" in r.getMessage()]
    assert len(refusals) == 4  # 11:59 and 12:00 in backfill, then 12:01 and 12:02
    assert all(m.startswith("cron item refused at ") for m in refusals)
    assert "check constraint" in refusals[0]
    assert not [r for r in caplog.records if "cron hit an error" in r.getMessage()]


async def test_an_overlong_task_name_does_not_stop_the_other_items(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    # A Crontab built directly skips the parser's checks; the database refuses its task name.
    overlong = Crontab(
        timer=CrontabTimer.parse(["*", "*", "*", "*", "*"]), task_identifier="t" * 129,
        identifier="overlong",
    )
    items = [overlong, *parse_crontab("* * * * * fine")]
    clock = MockClock(T0)
    async with scheduling(pool, items, clock) as task:
        await step(clock, at(12, 1))
        await step(clock, at(12, 2))
        assert not task.done()
        jobs = await cron_jobs(conn)
    assert stamps(jobs) == [(iso(at(12, 1)), False), (iso(at(12, 2)), False)]
    assert {job["task"] for job in jobs} == {"fine"}


# -- exactly once ---------------------------------------------------------------------------


async def test_three_schedulers_schedule_each_tick_exactly_once(
    db_url: str, conn: asyncpg.Connection
) -> None:
    await set_known(conn, "every", T0 - timedelta(days=1), at(11, 30))
    items = parse_crontab(
        "* * * * * every ?fill=1h\n*/3 * * * * third ?fill=1h\n0 * * * * hourly\n"
    )
    clock = MockClock(T0)
    pools = [await db.create_pool(db_url, min_size=1, max_size=2) for _ in range(3)]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_scheduler(p, SCHEMA, items, stop=stop, clock=clock))
        for p in pools
    ]
    try:
        await clock.wait_for_sleepers(3)
        for minute in range(1, 31):
            await step(clock, at(12, 0) + timedelta(minutes=minute, seconds=1), sleepers=3)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        for p in pools:
            await p.close()
    jobs = await cron_jobs(conn)
    every = stamps(jobs, "every")
    assert every == [(iso(at(11, m)), True) for m in range(31, 60)] + [
        (iso(at(12, 0)), True)
    ] + [(iso(at(12, m)), False) for m in range(1, 31)]
    assert stamps(jobs, "third") == [(iso(at(12, m)), False) for m in range(3, 31, 3)]
    assert stamps(jobs, "hourly") == []
    # Any duplicate would show up as a repeated (task, ts) pair.
    pairs = [(j["task"], j["payload"]["_cron"]["ts"]) for j in jobs]
    assert len(pairs) == len(set(pairs))


async def test_odd_schema_name(db_url: str, conn: asyncpg.Connection) -> None:
    from graphile_worker_cli import migrate

    schema = 'odd "name"'
    await migrate.migrate(conn, schema)
    quoted = db.escape_identifier(schema)
    await conn.execute(
        f"insert into {quoted}._private_known_crontabs values ('tick', $1, $2)",
        T0 - timedelta(hours=1), at(11, 58),
    )
    pool = await db.create_pool(db_url, min_size=1, max_size=2)
    clock = MockClock(T0)
    stop = asyncio.Event()
    items = parse_crontab("* * * * * tick ?fill=1h")
    task = asyncio.create_task(run_scheduler(pool, schema, items, stop=stop, clock=clock))
    try:
        await clock.wait_for_sleepers(1)
        await step(clock, at(12, 1))
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await pool.close()
    rows = await conn.fetch(f"select payload from {quoted}._private_jobs order by run_at")
    assert [json.loads(r["payload"])["_cron"] for r in rows] == [
        {"ts": iso(at(11, 59)), "backfilled": True},
        {"ts": iso(at(12, 0)), "backfilled": True},
        {"ts": iso(at(12, 1)), "backfilled": False},
    ]
    assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 0


async def test_claim_statement_adds_one_job_per_claimed_id_only(
    conn: asyncpg.Connection,
) -> None:
    from graphile_worker_cli.cron import store as cron_store

    await set_known(conn, "ahead", T0 - timedelta(hours=1), at(12, 5))
    await set_known(conn, "behind", T0 - timedelta(hours=1), at(11, 0))

    def request(identifier: str) -> cron_store.CronJobRequest:
        return cron_store.CronJobRequest(
            identifier=identifier, task_identifier="t", payload={"id": identifier},
            queue_name=None, max_attempts=None, job_key=None, priority=None, job_key_mode=None,
        )

    requests = [request("ahead"), request("behind"), request("fresh")]
    claimed = await cron_store.schedule_cron_jobs(conn, SCHEMA, requests, at(12, 0))
    assert set(claimed) == {"behind", "fresh"}
    again = await cron_store.schedule_cron_jobs(conn, SCHEMA, requests, at(12, 0))
    assert again == {}
    jobs = await cron_jobs(conn)
    assert sorted(job["payload"]["id"] for job in jobs) == ["behind", "fresh"]
    assert sorted(claimed.values()) == sorted(
        await conn.fetchval("select array_agg(id) from graphile_worker._private_jobs")
    )
