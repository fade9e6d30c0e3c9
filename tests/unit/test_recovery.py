"""Dead-worker recovery without a database: the resilient flag, settings checks."""

from __future__ import annotations

import pytest

from graphile_worker_cli import recovery
from graphile_worker_cli.errors import ConfigError


def test_job_has_resilient_flag() -> None:
    class FakeJob:
        def __init__(self, flags: dict[str, bool] | None) -> None:
            self.flags = flags

    assert recovery.job_has_resilient_flag(FakeJob({"infrastructure_resilient": True}))
    assert not recovery.job_has_resilient_flag(FakeJob({"other": True}))
    assert not recovery.job_has_resilient_flag(FakeJob(None))


def test_config_rejects_threshold_not_above_heartbeat() -> None:
    with pytest.raises(ConfigError, match="sweep_threshold"):
        recovery.WorkerRecoveryConfig(heartbeat_interval=10, sweep_threshold=5)
    with pytest.raises(ConfigError, match="heartbeat_interval"):
        recovery.WorkerRecoveryConfig(heartbeat_interval=0)
