"""Cancelling a job that a real graphile-worker 0.18.0 process runs: gw cannot interrupt
it, says so, and marks it; the Node worker finishes its attempt, the job is never run
again, and a gw worker then records it as cancelled."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import WorkerContext
from tests.helpers.gw_process import gw
from tests.helpers.reference import start_reference
from tests.helpers.waiting import wait_until
from tests.helpers.worker import S, add_job, make_options

pytestmark = pytest.mark.interop

# Records its run, waits until the test lets it go, then fails.
HELD_JS_TASK = """const fs = require("fs");
module.exports = async (payload) => {
  fs.appendFileSync(payload.runs, "run\\n");
  while (!fs.existsSync(payload.release)) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("node says no");
};
"""


async def _row(conn: asyncpg.Connection, job_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"select locked_by, attempts, max_attempts, last_error from {S}._private_jobs"
        " where id = $1", job_id,
    )
    assert row is not None
    return row


async def test_a_job_a_reference_worker_runs_is_marked_not_interrupted(
    conn: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    ref_dir = tmp_path / "ref"
    (ref_dir / "tasks").mkdir(parents=True)
    (ref_dir / "tasks" / "held.js").write_text(HELD_JS_TASK)
    runs, release = tmp_path / "runs", tmp_path / "release"
    job_id = await add_job(
        conn, "held", {"runs": str(runs), "release": str(release)}, max_attempts=5
    )
    reference = await start_reference(db_url, "--jobs", "1", cwd=ref_dir)
    try:
        async def node_runs_it() -> bool:
            row = await _row(conn, job_id)
            return runs.exists() and (row["locked_by"] or "").startswith("pool-")

        await wait_until(node_runs_it, timeout=60)
        node_id = (await _row(conn, job_id))["locked_by"]

        result = await gw("jobs", "cancel", str(job_id), "-c", db_url, "--json")
        assert result.code == 0, result.err
        assert json.loads(result.out) == [
            {"job_id": job_id, "outcome": "marked", "worker_id": node_id}
        ]
        row = await _row(conn, job_id)
        assert row["locked_by"] == node_id  # still running: Node cannot be told
        assert row["attempts"] == row["max_attempts"] == 5

        release.write_text("go")

        async def node_let_go() -> bool:
            return bool((await _row(conn, job_id))["locked_by"] is None)

        await wait_until(node_let_go, timeout=30)
        row = await _row(conn, job_id)
        assert row["last_error"] == "node says no"  # what Node wrote stands
        assert row["attempts"] == row["max_attempts"]  # so Node never fetches it again
    finally:
        reference.send_signal(signal.SIGTERM)
        await asyncio.wait_for(reference.wait(), 30)
    assert runs.read_text() == "run\n"

    # A gw worker's look gives it the cancelled error and drops the request.
    async def never(payload: Any, ctx: WorkerContext) -> None:
        raise AssertionError("a cancelled job ran")

    worker = await make_options(db_url).define_job(never, "held").init()
    task = asyncio.create_task(worker.run())
    try:
        async def recorded() -> bool:
            return bool((await _row(conn, job_id))["last_error"] == "cancelled")

        await wait_until(recorded)
    finally:
        worker.request_shutdown("test over")
        await asyncio.wait_for(task, 30)
    assert await conn.fetchval(f"select count(*) from {S}._gw_cancel_requests") == 0
