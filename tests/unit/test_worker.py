"""Worker options without a database: duplicate task identifiers, options from settings."""

from __future__ import annotations

from typing import Any

import pytest

from graphile_worker_cli import tasks
from graphile_worker_cli.errors import BadInputError
from graphile_worker_cli.worker import WorkerOptions


async def test_duplicate_identifiers_are_rejected() -> None:
    async def a(payload: Any) -> None:
        return None

    options = WorkerOptions().define_job(a, "same")
    with pytest.raises(BadInputError, match="same"):
        options.define_job(a, "same")


def test_from_settings_copies_the_settings() -> None:
    from graphile_worker_cli import config

    settings = config.load_settings(None, {
        "database_url": "postgres://u@h/d", "schema": "odd", "concurrency": 3,
        "forbidden_flags": ["x"], "shutdown_grace_period": "5s",
    })
    registry = tasks.TaskRegistry()
    options = WorkerOptions.from_settings(settings, registry)
    assert (options.database_url, options.schema, options.concurrency) == (
        "postgres://u@h/d", "odd", 3)
    assert options.forbidden_flags == ["x"] and options.shutdown_grace_period == 5.0
    assert options.tasks is registry
