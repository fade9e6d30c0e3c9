"""``conn=`` without a database: no pool and no connection says what to do, and every jobs
method of both APIs takes ``conn=``."""

from __future__ import annotations

import pytest

from graphile_worker_cli import sync
from graphile_worker_cli.errors import BadInputError
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers.connection_kinds import SCHEMA

S = SCHEMA


def test_no_pool_and_no_conn_says_what_to_do() -> None:
    with pytest.raises(BadInputError, match="pass conn= your connection"):
        sync.SyncWorkerUtils(schema=S).add_job("send")


async def test_worker_utils_without_a_pool_says_what_to_do() -> None:
    with pytest.raises(BadInputError, match="pass conn= your connection"):
        await WorkerUtils(schema=S).add_job("send")


def test_every_jobs_method_takes_conn_in_both_apis() -> None:
    import inspect

    for name, method in vars(WorkerUtils).items():
        if name.startswith("_") or name == "close" or not inspect.iscoroutinefunction(method):
            continue
        assert "conn" in inspect.signature(method).parameters, name
        twin = inspect.signature(getattr(sync.SyncWorkerUtils, name)).parameters
        assert "conn" in twin, name
