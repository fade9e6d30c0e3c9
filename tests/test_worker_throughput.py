"""Throughput settings: flags and TOML keys reach the worker, validation, prepared
statements on and off (observed in PostgreSQL's pg_prepared_statements)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from graphile_worker_cli import config, context, tasks
from graphile_worker_cli.cli.app import app
from graphile_worker_cli.errors import ConfigError
from graphile_worker_cli.worker import WorkerOptions
from tests.test_worker import add_job, make_options

FLAGS = (
    "--local-queue-size", "--local-queue-ttl", "--local-queue-refetch-delay",
    "--complete-job-batch-delay", "--fail-job-batch-delay", "--no-prepared-statements",
    "--processes",
)


def test_gw_run_help_lists_every_throughput_flag() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in FLAGS:
        assert flag in result.output


def test_settings_reach_the_worker_options(tmp_path: Path) -> None:
    toml = tmp_path / "worker.toml"
    toml.write_text('local_queue_size = 200\nlocal_queue_ttl = "90s"\n'
                    'fail_job_batch_delay = "20ms"\n')
    settings = config.load_settings(toml, {
        "local_queue_refetch_delay": "50ms", "complete_job_batch_delay": "5ms",
        "prepared_statements": False, "processes": 3,
    })
    options = WorkerOptions.from_settings(settings, tasks.TaskRegistry())
    assert options.local_queue_size == 200
    assert options.local_queue_ttl == 90.0
    assert options.local_queue_refetch_delay == 0.05
    assert options.complete_job_batch_delay == 0.005
    assert options.fail_job_batch_delay == 0.02
    assert options.prepared_statements is False
    assert settings.processes == 3


@pytest.mark.parametrize(("field", "value"), [
    ("local_queue_size", -1), ("local_queue_ttl", 0.0), ("local_queue_refetch_delay", -1.0),
    ("complete_job_batch_delay", -0.5), ("fail_job_batch_delay", -2.0),
])
def test_bad_throughput_values_are_config_errors(field: str, value: Any) -> None:
    async def noop(payload: Any) -> None:
        return None

    options = WorkerOptions(database_url="postgresql://x@localhost/db", **{field: value})
    options.define_job(noop, "noop")
    with pytest.raises(ConfigError, match=field):
        options.validate()


def test_refetch_delay_may_not_exceed_the_poll_interval() -> None:
    async def noop(payload: Any) -> None:
        return None

    options = WorkerOptions(database_url="postgresql://x@localhost/db", poll_interval=1.0,
                            local_queue_refetch_delay=2.0).define_job(noop, "noop")
    with pytest.raises(ConfigError, match="must not exceed poll_interval"):
        options.validate()


@pytest.mark.parametrize("prepared", [True, False])
async def test_prepared_statements_switch(
    db_url: str, conn: asyncpg.Connection, prepared: bool
) -> None:
    counts: list[int] = []

    async def probe(payload: Any, ctx: context.WorkerContext) -> None:
        rows = await ctx.query("select count(*) as n from pg_prepared_statements")
        counts.append(rows[0]["n"])

    await add_job(conn, "probe", {})
    # One connection: the fetch ran on the very session the probe looks at.
    options = make_options(db_url, max_pg_conn=1, worker_recovery=False,
                           prepared_statements=prepared)
    worker = await options.define_job(probe, "probe").init()
    await worker.run_once()
    assert len(counts) == 1
    assert (counts[0] > 0) is prepared


async def test_fetched_jobs_carry_every_column_of_their_row(conn: asyncpg.Connection) -> None:
    """The fetch builds Jobs by position (the hot path); each field must still come from the
    column of the same name."""
    from datetime import UTC, datetime

    from graphile_worker_cli import job as jobs
    from graphile_worker_cli.queries import worker as queries

    run_at = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    job_id = await add_job(
        conn, "fields_task", {"n": 1}, queue_name="q1", run_at=run_at, max_attempts=7,
        job_key="k1", priority=-3, flags=["a", "b"],
    )
    task_ids = await queries.ensure_tasks(conn, "graphile_worker", ["fields_task"])
    fetched = await queries.fetch_jobs(
        conn, "graphile_worker", "w-fields", list(task_ids.values()), 10,
        task_identifiers={v: k for k, v in task_ids.items()},
    )
    row = await conn.fetchrow(
        "select j.*, t.identifier as task_identifier, q.queue_name"
        " from graphile_worker._private_jobs j"
        " join graphile_worker._private_tasks t on t.id = j.task_id"
        " left join graphile_worker._private_job_queues q on q.id = j.job_queue_id"
        " where j.id = $1", job_id,
    )
    assert [job.id for job in fetched] == [job_id]
    assert fetched[0] == jobs.job_from_record(row)
    assert (fetched[0].queue_name, fetched[0].key, fetched[0].flags) == ("q1", "k1",
                                                                          {"a": True, "b": True})
    assert (fetched[0].priority, fetched[0].max_attempts, fetched[0].attempts) == (-3, 7, 1)
    assert fetched[0].locked_by == "w-fields" and fetched[0].locked_at is not None
