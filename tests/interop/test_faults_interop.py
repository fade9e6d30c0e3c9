"""Faults beside a real reference worker: ``gw run`` processes sweeping dead workers
never touch a job that a graphile-worker 0.18.0 process holds.

Every wait is a poll of the database with a deadline; recovery settings are those of
tests/helpers/faults.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.faults import AFTER_TWO_THRESHOLDS, THRESHOLD, GwProcess, wait_for, write_tasks
from tests.helpers.reference import start_reference

pytestmark = pytest.mark.interop


LONG_JS_TASK = """module.exports = async () => {
  await new Promise((resolve) => setTimeout(resolve, 60000));
};
"""


@pytest.mark.interop
async def test_reference_worker_job_is_never_swept_by_gw_workers(
    fconn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    ref_dir = tmp_path / "ref"
    (ref_dir / "tasks").mkdir(parents=True)
    (ref_dir / "tasks" / "long_task.js").write_text(LONG_JS_TASK)
    tasks = write_tasks(tmp_path)
    log = tmp_path / "worker.log"
    ref_job = await fconn.fetchval("select id from graphile_worker.add_job('long_task')")
    reference = await start_reference(db_url, "--jobs", "1", cwd=ref_dir)
    gw = await GwProcess.start(db_url, tasks, log, "-j", "2")
    try:
        await wait_for(
            fconn, "select locked_by like 'pool-%' from graphile_worker._private_jobs"
            " where id = $1", ref_job, what="reference holds its job", log=log,
        )
        locked_at = await fconn.fetchval(
            "select locked_at from graphile_worker._private_jobs where id = $1", ref_job
        )
        await fconn.execute(
            "insert into graphile_worker._gw_workers (id, host, pid, version,"
            " heartbeat_interval, last_heartbeat_at)"
            " values ('gw-ghost', 'nowhere', 0, 'x', interval '0.1s', now() - interval '1h')"
        )
        await wait_for(
            fconn, "select not exists (select 1 from graphile_worker._gw_workers"
            " where id = 'gw-ghost')", what="gw swept", log=log,
        )
        await wait_for(
            fconn, AFTER_TWO_THRESHOLDS, locked_at, THRESHOLD,
            what="two thresholds after the lock", log=log,
        )
        job = await fconn.fetchrow(
            "select locked_by, attempts, last_error from graphile_worker._private_jobs"
            " where id = $1", ref_job,
        )
        assert job is not None
        assert job["locked_by"].startswith("pool-") and job["attempts"] == 1
        assert job["last_error"] is None
    finally:
        reference.send_signal(signal.SIGKILL)
        await reference.wait()
        assert await gw.stop() == 0
