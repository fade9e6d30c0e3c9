"""``ctx.transaction()``: a task completes its job in its own transaction (issue 17 item 8),
with a real worker on real PostgreSQL: the writes and the completion commit together, roll
back together, and a job taken away from the worker is not completed by it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import context, hooks, task
from graphile_worker_cli.errors import JobLockLostError
from graphile_worker_cli.observability.metrics import MetricsPlugin
from graphile_worker_cli.queries import worker as queries
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers.worker import S, add_job, make_options

EFFECT = "insert into effects (job_id, note) values ($1, $2)"


@pytest.fixture
async def effects(conn: asyncpg.Connection) -> asyncpg.Connection:
    await conn.execute("create table effects (job_id bigint not null, note text not null)")
    return conn


class Events:
    """Counts the job events of a worker (what the metrics plugin counts too)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, int]] = Counter()

    def register(self, registry: hooks.HookRegistry) -> None:
        for event in (hooks.JobComplete, hooks.JobFail, hooks.JobInterrupted):
            registry.on(event, self._counter(event.__name__))

    def _counter(self, name: str) -> Any:
        def count(ctx: Any) -> None:
            self.counts[(name, ctx.job.id)] += 1

        return count


async def _effects(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    rows = await conn.fetch("select job_id, note from effects order by job_id, note")
    return [(row["job_id"], row["note"]) for row in rows]


async def _job(conn: asyncpg.Connection, job_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"select attempts, last_error, locked_by from {S}._private_jobs where id = $1", job_id
    )
    return row


async def test_the_writes_and_the_completion_commit_together(
    db_url: str, effects: asyncpg.Connection
) -> None:
    job_id = await add_job(effects, "pay", {"amount": 3}, queue_name="payments")
    follower = await add_job(effects, "pay", {"amount": 4}, queue_name="payments")

    async def pay(payload: Any, ctx: context.WorkerContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(EFFECT, ctx.job_id, f"paid {payload['amount']}")
            inside = await conn.fetchval(
                f"select count(*) from {S}._private_jobs where id = $1", ctx.job_id
            )
            assert inside == 1  # not deleted before the block ends

    events = Events()
    metrics = MetricsPlugin(refresh_interval=3600)
    options = make_options(db_url).define_job(pay, "pay")
    options.add_plugin(events).add_plugin(metrics)
    worker = await options.init()
    await worker.run_once()

    assert await _effects(effects) == [(job_id, "paid 3"), (follower, "paid 4")]
    assert await effects.fetchval(f"select count(*) from {S}._private_jobs") == 0
    queue = await effects.fetchrow(f"select locked_by, locked_at from {S}._private_job_queues")
    assert queue is not None and tuple(queue) == (None, None)
    # Completed by the transactions: the settler had nothing to write.
    assert worker.settler.completions.statements == 0
    assert events.counts == Counter({("JobComplete", job_id): 1, ("JobComplete", follower): 1})
    samples = metrics.registry.get_sample_value
    assert samples("gw_jobs_completed_total", {"task": "pay"}) == 2
    assert samples("gw_jobs_failed_total", {"task": "pay"}) is None
    assert samples("gw_jobs_running") == 0


async def test_an_exception_in_the_block_rolls_back_and_the_job_is_retried(
    db_url: str, effects: asyncpg.Connection
) -> None:
    job_id = await add_job(effects, "flaky", None)

    async def flaky(payload: Any, ctx: context.WorkerContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(EFFECT, ctx.job_id, "half done")
            raise RuntimeError("card network down")

    events = Events()
    options = make_options(db_url).define_job(flaky, "flaky")
    options.add_plugin(events)
    await (await options.init()).run_once()

    assert await _effects(effects) == []
    row = await _job(effects, job_id)
    assert row is not None
    assert (row["attempts"], row["last_error"], row["locked_by"]) == (
        1, "RuntimeError: card network down", None,
    )
    assert events.counts == Counter({("JobFail", job_id): 1})


async def test_a_job_taken_away_meanwhile_is_not_completed_and_its_writes_roll_back(
    db_url: str, effects: asyncpg.Connection
) -> None:
    job_id = await add_job(effects, "slow", None)
    errors: list[BaseException] = []
    utils = await WorkerUtils.connect(db_url, max_size=1)

    async def slow(payload: Any, ctx: context.WorkerContext) -> None:
        try:
            async with ctx.transaction() as conn:
                await conn.execute(EFFECT, ctx.job_id, f"attempt {ctx.attempts}")
                if ctx.attempts == 1:
                    # What an operator's `gw workers unlock` (or a sweep) does meanwhile.
                    await utils.force_unlock_workers([ctx.worker_id])
        except JobLockLostError as error:
            errors.append(error)
            raise

    try:
        events = Events()
        options = make_options(db_url).define_job(slow, "slow")
        options.add_plugin(events)
        await (await options.init()).run_once()
    finally:
        await utils.close()

    assert len(errors) == 1 and f"job {job_id} (slow)" in str(errors[0])
    # The first run's write rolled back; the job, unlocked, ran again and completed.
    assert await _effects(effects) == [(job_id, "attempt 2")]
    assert await _job(effects, job_id) is None
    assert events.counts[("JobComplete", job_id)] == 1


async def test_a_failure_after_the_commit_leaves_the_job_complete(
    db_url: str, effects: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = await add_job(effects, "then_fail", None)

    async def then_fail(payload: Any, ctx: context.WorkerContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(EFFECT, ctx.job_id, "done")
        raise RuntimeError("the e-mail after it bounced")

    events = Events()
    options = make_options(db_url).define_job(then_fail, "then_fail")
    options.add_plugin(events)
    await (await options.init()).run_once()

    assert await _effects(effects) == [(job_id, "done")]
    assert await _job(effects, job_id) is None
    assert events.counts == Counter({("JobComplete", job_id): 1})
    assert any(
        "failed after its transaction completed it" in r.getMessage()
        and "the e-mail after it bounced" in r.getMessage() for r in caplog.records
    )


async def test_one_transaction_per_run(db_url: str, effects: asyncpg.Connection) -> None:
    job_id = await add_job(effects, "twice", None)
    problems: list[str] = []

    async def twice(payload: Any, ctx: context.WorkerContext) -> None:
        async with ctx.transaction() as conn:
            with pytest.raises(RuntimeError) as nested:
                async with ctx.transaction():
                    pass
            problems.append(str(nested.value))
            await conn.execute(EFFECT, ctx.job_id, "first")
        with pytest.raises(RuntimeError) as again:
            async with ctx.transaction():
                pass
        problems.append(str(again.value))

    await (await make_options(db_url).define_job(twice, "twice").init()).run_once()

    assert "already open" in problems[0] and "already completed" in problems[1]
    assert await _effects(effects) == [(job_id, "first")]
    assert await _job(effects, job_id) is None


async def test_after_a_rollback_a_new_transaction_may_complete_the_job(
    db_url: str, effects: asyncpg.Connection
) -> None:
    job_id = await add_job(effects, "retry_inside", None)

    async def retry_inside(payload: Any, ctx: context.WorkerContext) -> None:
        with pytest.raises(ValueError):
            async with ctx.transaction() as conn:
                await conn.execute(EFFECT, ctx.job_id, "rolled back")
                raise ValueError("serialization failure, say")
        async with ctx.transaction() as conn:
            await conn.execute(EFFECT, ctx.job_id, "kept")

    await (await make_options(db_url).define_job(retry_inside, "retry_inside").init()).run_once()
    assert await _effects(effects) == [(job_id, "kept")]
    assert await _job(effects, job_id) is None


async def test_a_sync_task_uses_the_transaction_from_its_thread(
    db_url: str, effects: asyncpg.Connection
) -> None:
    done = await add_job(effects, "sync_pay", {"ok": True})
    broken = await add_job(effects, "sync_pay", {"ok": False})

    def sync_pay(payload: Any, ctx: context.WorkerContext) -> None:
        with ctx.transaction() as tx:
            tx.execute(EFFECT, ctx.job_id, "sync")
            assert tx.fetchval("select count(*) from effects where job_id = $1", ctx.job_id) == 1
            [row] = tx.fetch("select note from effects where job_id = $1", ctx.job_id)
            assert row["note"] == "sync" and tx.fetchrow("select 1 as one")["one"] == 1
            tx.executemany(EFFECT, [(ctx.job_id, "many")])
            ctx.run_coroutine(ctx.add_job("receipt", {"for": ctx.job_id}, conn=tx.connection))
            if not payload["ok"]:
                raise RuntimeError("declined")

    await (await make_options(db_url).define_job(sync_pay, "sync_pay").init()).run_once()

    assert await _effects(effects) == [(done, "many"), (done, "sync")]
    assert await _job(effects, done) is None
    row = await _job(effects, broken)
    assert row is not None and row["last_error"] == "RuntimeError: declined"
    # The receipt added in the committed transaction exists; the rolled back one does not.
    receipts = await effects.fetch(
        f"select j.payload from {S}._private_jobs as j join {S}._private_tasks as t"
        " on t.id = j.task_id where t.identifier = 'receipt'"
    )
    assert [json.loads(r["payload"]) for r in receipts] == [{"for": done}]


async def test_an_async_task_cannot_use_the_sync_form(
    db_url: str, effects: asyncpg.Connection
) -> None:
    job_id = await add_job(effects, "wrong_form", None)

    async def wrong_form(payload: Any, ctx: context.WorkerContext) -> None:
        with ctx.transaction():
            pass

    await (await make_options(db_url).define_job(wrong_form, "wrong_form").init()).run_once()
    row = await _job(effects, job_id)
    assert row is not None and "async with ctx.transaction()" in row["last_error"]


async def test_batch_tasks_cannot_complete_in_a_transaction(
    db_url: str, effects: asyncpg.Connection
) -> None:
    job_id = await add_job(effects, "items", [1, 2])

    @task(batch=True)
    async def items(values: list[int], ctx: context.WorkerContext) -> list[None]:
        async with ctx.transaction():
            pass
        return [None for _ in values]

    await (await make_options(db_url).define_job(items, "items").init()).run_once()
    row = await _job(effects, job_id)
    assert row is not None and "not for batch tasks" in row["last_error"]
    assert await _effects(effects) == []


async def test_shutdown_rolls_back_an_open_transaction_and_keeps_a_committed_one(
    db_url: str, effects: asyncpg.Connection
) -> None:
    open_job = await add_job(effects, "hold", {"commit": False})
    committed_job = await add_job(effects, "hold", {"commit": True})
    holding: set[int] = set()
    both_holding = asyncio.Event()

    async def hold(payload: Any, ctx: context.WorkerContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(EFFECT, ctx.job_id, "held")
            if not payload["commit"]:
                await _held(ctx.job_id)
        await _held(ctx.job_id)

    async def _held(job_id: int) -> None:
        holding.add(job_id)
        if len(holding) == 2:
            both_holding.set()
        await asyncio.Event().wait()  # until the shutdown cancels it

    events = Events()
    options = make_options(
        db_url, shutdown_grace_period=0.0, shutdown_abort_timeout=0.1
    ).define_job(hold, "hold")
    options.add_plugin(events)
    worker = await options.init()
    running = asyncio.get_running_loop().create_task(worker.run())
    await asyncio.wait_for(both_holding.wait(), 20)
    worker.request_shutdown()
    await asyncio.wait_for(running, 30)

    assert await _effects(effects) == [(committed_job, "held")]
    assert await _job(effects, committed_job) is None
    row = await _job(effects, open_job)
    assert row is not None and (row["attempts"], row["locked_by"]) == (0, None)
    assert events.counts == Counter({
        ("JobComplete", committed_job): 1, ("JobInterrupted", open_job): 1,
    })


async def test_a_commit_the_server_refuses_leaves_the_job_to_be_retried(
    db_url: str, effects: asyncpg.Connection
) -> None:
    await effects.execute(
        "alter table effects add constraint one_note_per_job unique (job_id)"
        " deferrable initially deferred"
    )
    job_id = await add_job(effects, "duplicate", None)

    async def duplicate(payload: Any, ctx: context.WorkerContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(EFFECT, ctx.job_id, "one")
            await conn.execute(EFFECT, ctx.job_id, "two")  # fails at commit

    await (await make_options(db_url).define_job(duplicate, "duplicate").init()).run_once()
    assert await _effects(effects) == []
    row = await _job(effects, job_id)
    assert row is not None and row["attempts"] == 1
    assert row["last_error"].startswith("UniqueViolationError")


async def test_a_commit_without_answer_fails_the_job_even_if_the_task_carries_on(
    db_url: str, effects: asyncpg.Connection
) -> None:
    # At commit, a deferred trigger ends the transaction's own session: the commit never
    # answers (and does not land).
    await effects.execute("""
        create function die_at_commit() returns trigger language plpgsql as $$
        begin
          if new.note = 'die' then perform pg_terminate_backend(pg_backend_pid()); end if;
          return null;
        end $$;
        create constraint trigger die_at_commit after insert on effects
          deferrable initially deferred for each row execute function die_at_commit();
    """)
    job_id = await add_job(effects, "lost", None)
    errors: list[str] = []

    async def lost(payload: Any, ctx: context.WorkerContext) -> None:
        try:
            async with ctx.transaction() as conn:
                await conn.execute(EFFECT, ctx.job_id, "die")
        except Exception as error:  # a task that ignores the lost commit
            errors.append(type(error).__name__)

    options = make_options(db_url).define_job(lost, "lost")
    await (await options.init()).run_once()

    assert errors == ["ConnectionDoesNotExistError"]
    row = await _job(effects, job_id)
    assert row is not None and row["attempts"] == 1
    assert "got no answer" in row["last_error"]
    assert await _effects(effects) == []


async def test_job_history_records_a_job_completed_in_its_transaction(
    db_url: str, effects: asyncpg.Connection
) -> None:
    done = await add_job(effects, "recorded", {"ok": True}, queue_name="books")
    rolled_back = await add_job(effects, "recorded", {"ok": False})

    async def recorded(payload: Any, ctx: context.WorkerContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(EFFECT, ctx.job_id, "kept")
            if not payload["ok"]:
                raise RuntimeError("not this time")

    worker = await make_options(db_url, history_retention=86400.0).define_job(
        recorded, "recorded"
    ).init()
    await worker.run_once()

    rows = await effects.fetch(
        f"select job_id, outcome, task_identifier, queue_name, attempts, worker_id"
        f" from {S}._gw_job_history_entries"
    )
    assert [tuple(row) for row in rows] == [
        (done, "completed", "recorded", "books", 1, worker.worker_id)
    ]
    assert await _effects(effects) == [(done, "kept")]
    assert await _job(effects, rolled_back) is not None


async def test_a_sync_task_past_its_timeout_cannot_complete_the_job(
    db_url: str, effects: asyncpg.Connection
) -> None:
    """The worker gives up on a sync task at its timeout, but its thread runs on: a commit
    it makes later must not complete the job that already failed as timed out."""
    job_id = await add_job(effects, "overrun", None)
    in_transaction, release, finished = threading.Event(), threading.Event(), threading.Event()
    raised: list[BaseException] = []

    @task("overrun", timeout="200ms")
    def overrun(payload: Any, ctx: context.WorkerContext) -> None:
        try:
            with ctx.transaction() as tx:
                tx.execute(EFFECT, ctx.job_id, "late")
                in_transaction.set()
                release.wait(20)  # ignores its abort signal, well past the timeout
        except BaseException as error:
            raised.append(error)
        finally:
            finished.set()

    events = Events()
    failed = asyncio.Event()
    options = make_options(db_url, shutdown_abort_timeout=0.1).define_job(overrun)
    options.add_plugin(events)
    options.hooks.on(hooks.JobFail, lambda ctx: failed.set())
    worker = await options.init()
    running = asyncio.get_running_loop().create_task(worker.run())
    await asyncio.wait_for(failed.wait(), 20)  # the worker gave up on it: timed out
    assert in_transaction.is_set()
    release.set()  # the thread now leaves its block cleanly: the commit is attempted
    assert await asyncio.to_thread(finished.wait, 20)
    worker.request_shutdown()
    await asyncio.wait_for(running, 30)

    assert [type(error) for error in raised] == [JobLockLostError]
    assert "timed out after 200ms" in str(raised[0])
    assert await _effects(effects) == []  # the late writes were rolled back
    row = await _job(effects, job_id)
    assert row is not None
    assert (row["attempts"], row["locked_by"], row["last_error"]) == (
        1, None, "timed out after 200ms"
    )
    assert events.counts == Counter({("JobFail", job_id): 1})
    # Once the timeout's failure is written, the completion's own guard no longer matches
    # the job either (the lock is cleared), so no commit of that attempt could complete it.
    async with effects.transaction():
        deleted = await effects.fetchval(
            queries.COMPLETE_JOB_IN_TRANSACTION.sql(S), worker.worker_id, job_id, 1
        )
        assert deleted == 0
