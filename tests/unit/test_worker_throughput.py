"""Throughput settings without a database: flags and TOML keys reach the worker options,
bad values are config errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from graphile_worker_cli import config, tasks
from graphile_worker_cli.cli.app import app
from graphile_worker_cli.errors import ConfigError
from graphile_worker_cli.worker import WorkerOptions

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
