"""Dead-worker recovery beside a real reference worker: gw never sweeps the jobs a
graphile-worker 0.18.0 process holds."""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg
import pytest

from graphile_worker_cli import recovery
from tests.helpers.recovery import SCHEMA, age_heartbeat, job_row, register
from tests.helpers.reference import start_reference
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.interop

Sweep = recovery.SweepStaleWorkersOptions


LONG_TASK = """module.exports = async (payload, helpers) => {
  await new Promise((resolve) => setTimeout(resolve, 60000));
};
"""


@pytest.mark.interop
async def test_real_reference_worker_is_never_swept(
    rconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "long_task.js").write_text(LONG_TASK)
    job_id = await rconn.fetchval("select id from graphile_worker.add_job('long_task')")
    reference = await start_reference(db_url, "--jobs", "1", cwd=tmp_path)
    try:
        async def locked() -> bool:
            return (await job_row(rconn, job_id))["locked_by"] is not None

        await wait_until(locked, timeout=30)
        await register(rconn, "gw-dead")
        await age_heartbeat(rconn, "gw-dead", "1 hour")
        result = await recovery.sweep_stale_workers(rconn, SCHEMA, Sweep(threshold=0))
        assert result.worker_ids == ["gw-dead"] and result.recovered_job_ids == []
        row = await job_row(rconn, job_id)
        assert row["locked_by"].startswith("pool-") and row["attempts"] == 1
    finally:
        reference.send_signal(signal.SIGKILL)
        await reference.wait()
