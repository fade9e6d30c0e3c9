"""The synchronous API mirrors the async one: every public WorkerUtils method has a twin."""

from __future__ import annotations

import asyncio

from graphile_worker_cli import sync


def test_every_public_worker_utils_method_has_a_sync_twin() -> None:
    from graphile_worker_cli import worker_utils

    public = {
        name for name, value in vars(worker_utils.WorkerUtils).items()
        if not name.startswith("_") and asyncio.iscoroutinefunction(value)
    }
    missing = sorted(name for name in public if not hasattr(sync.SyncWorkerUtils, name))
    assert missing == []
