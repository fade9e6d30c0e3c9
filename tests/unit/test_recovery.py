"""Dead-worker recovery without a database: the resilient flag, settings checks, a
``WorkerRecoveryConfig`` given to ``WorkerOptions``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from graphile_worker_cli import recovery
from graphile_worker_cli.errors import ConfigError
from graphile_worker_cli.worker import WorkerOptions


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


def test_worker_options_take_their_recovery_settings_from_a_config() -> None:
    config = recovery.WorkerRecoveryConfig(
        heartbeat_interval=2, sweep_interval=7, sweep_threshold=20, recovery_delay=3,
        resilient_sweep_threshold_multiplier=4, resilient_job_flags=("slow",),
    )
    options = WorkerOptions(worker_recovery=config)
    assert options.worker_recovery is True
    assert (options.heartbeat_interval, options.sweep_interval, options.sweep_threshold,
            options.recovery_delay) == (2, 7, 20, 3)
    assert recovery.WorkerRecoveryConfig.from_settings(options) == config
    off = WorkerOptions(worker_recovery=recovery.WorkerRecoveryConfig(enabled=False))
    assert off.worker_recovery is False


def test_a_recovery_config_assigned_after_construction_is_applied_by_validate() -> None:
    def noop(payload: object) -> None:
        return None

    options = WorkerOptions(database_url="postgres://unused").define_job(noop, "noop")
    options.worker_recovery = recovery.WorkerRecoveryConfig(heartbeat_interval=4)
    options.validate()
    applied: object = options.worker_recovery
    assert (applied, options.heartbeat_interval) == (True, 4)


def test_worker_options_refuse_a_field_that_contradicts_their_recovery_config() -> None:
    config = recovery.WorkerRecoveryConfig(heartbeat_interval=2)
    with pytest.raises(ConfigError) as raised:
        WorkerOptions(worker_recovery=config, heartbeat_interval=5)
    assert str(raised.value) == (
        "WorkerOptions got heartbeat_interval=5 and worker_recovery="
        "WorkerRecoveryConfig(heartbeat_interval=2): give heartbeat_interval once"
    )
    agreeing = WorkerOptions(worker_recovery=config, heartbeat_interval=2, sweep_interval=30)
    assert (agreeing.heartbeat_interval, agreeing.sweep_interval) == (2, 30)


def test_settings_without_resilient_fields_get_the_defaults() -> None:
    settings = SimpleNamespace(
        worker_recovery=True, heartbeat_interval=3, sweep_interval=30, sweep_threshold=60,
        recovery_delay=0,
    )  # the fields config.Settings has
    config = recovery.WorkerRecoveryConfig.from_settings(settings)
    assert config.heartbeat_interval == 3
    assert config.resilient_sweep_threshold_multiplier == 5
    assert config.resilient_job_flags == (recovery.INFRASTRUCTURE_RESILIENT_FLAG,)
