"""The synchronous API mirrors the async one: every public WorkerUtils method has a twin,
and quick_add_job has quick_add_job_sync."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from graphile_worker_cli import config, sync


def test_every_public_worker_utils_method_has_a_sync_twin() -> None:
    from graphile_worker_cli import worker_utils

    public = {
        name for name, value in vars(worker_utils.WorkerUtils).items()
        if not name.startswith("_") and asyncio.iscoroutinefunction(value)
    }
    missing = sorted(name for name in public if not hasattr(sync.SyncWorkerUtils, name))
    assert missing == []


def test_quick_add_job_sync_takes_the_arguments_of_quick_add_job() -> None:
    from graphile_worker_cli import worker_utils

    sync_parameters = inspect.signature(sync.quick_add_job_sync).parameters
    assert list(sync_parameters) == list(
        inspect.signature(worker_utils.quick_add_job).parameters
    )


def test_quick_add_job_refuses_settings_together_with_overrides() -> None:
    settings = config.Settings.defaults()
    with pytest.raises(TypeError, match="pass settings, or config_file/overrides, not both"):
        sync.quick_add_job_sync("t", settings=settings, schema="other")
