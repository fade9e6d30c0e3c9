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
