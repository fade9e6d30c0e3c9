"""Jobs cross the language line: gw adds, the Node reference runs; Node adds, gw lists."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest

from graphile_worker_cli import worker_utils as wu
from graphile_worker_cli.job import JobSpec
from tests.helpers import reference
from tests.helpers.paths import GW

pytestmark = pytest.mark.interop


# A CommonJS task for the reference worker: it writes what it received to a file.
RECORDING_TASK = """\
const fs = require("fs");
const path = require("path");
module.exports = async (payload, helpers) => {
  const out = path.join(__dirname, "..", "ran-" + helpers.job.id + ".json");
  fs.writeFileSync(out, JSON.stringify({ payload, job: helpers.job }));
};
"""

QUICK_ADD_JOB = """\
import { quickAddJob } from %(module)s;
const job = await quickAddJob(
  { connectionString: process.argv[2] },
  "node_task",
  { from: "node", list: [1, 2, 3] },
  { queueName: "node-queue", priority: 4, jobKey: "from-node", maxAttempts: 7, flags: ["nf"] },
);
console.log(job.id);
"""


def gw_env() -> dict[str, str]:
    return {
        name: value for name, value in os.environ.items()
        if not name.startswith("GW_") and name not in ("DATABASE_URL", "GRAPHILE_WORKER_SCHEMA")
    }


async def run_gw(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [GW, *args], capture_output=True, text=True, env=gw_env(), timeout=60
    )


async def test_job_added_by_gw_cli_runs_on_the_reference(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "send_email.js").write_text(RECORDING_TASK)
    payload = {"to": "a@example.com", "tags": ["x", "y"], "n": 1.5, "nested": {"ok": True}}
    added = await run_gw(
        "add-job", "send_email", json.dumps(payload), "-c", db_url, "--queue", "mail",
        "--priority", "-2", "--job-key", "welcome:1", "--flag", "urgent", "--flag", "bulk",
        "--max-attempts", "3", "--run-at", "2020-01-02T03:04:05Z",
    )
    assert added.returncode == 0, added.stderr
    job_id = int(added.stdout)

    ran = await asyncio.to_thread(reference.run_reference, db_url, "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr

    record = json.loads((tmp_path / f"ran-{job_id}.json").read_text())
    assert record["payload"] == payload
    job = record["job"]
    assert (job["task_identifier"], job["priority"]) == ("send_email", -2)
    queue = await conn.fetchval(
        "select queue_name from graphile_worker._private_job_queues where id = $1",
        job["job_queue_id"],
    )
    assert queue == "mail"
    assert (job["key"], job["max_attempts"], job["attempts"]) == ("welcome:1", 3, 1)
    assert job["flags"] == {"urgent": True, "bulk": True}
    assert job["run_at"].startswith("2020-01-02T03:04:05")
    # The reference completed it.
    assert await conn.fetchval("select count(*) from graphile_worker._private_jobs") == 0


async def test_job_added_by_worker_utils_runs_on_the_reference(
    db_url: str, tmp_path: Path
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "digest.js").write_text(RECORDING_TASK)
    async with await wu.WorkerUtils.connect(db_url, max_size=1) as utils:
        spec = JobSpec(job_key="digest")
        await utils.add_batch_job("digest", [{"n": 1}], spec)
        job = await utils.add_batch_job("digest", [{"n": 2}], spec)
    ran = await asyncio.to_thread(reference.run_reference, db_url, "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    record = json.loads((tmp_path / f"ran-{job.id}.json").read_text())
    assert record["payload"] == [{"n": 1}, {"n": 2}]


async def test_job_added_by_the_reference_is_listed_by_gw(db_url: str, tmp_path: Path) -> None:
    reference.ensure_installed()
    module = (reference.NODE_MODULES / "graphile-worker" / "dist" / "index.js").as_uri()
    script = tmp_path / "add.mjs"
    script.write_text(QUICK_ADD_JOB % {"module": json.dumps(module)})
    added = await asyncio.to_thread(
        subprocess.run, ["node", str(script), db_url], capture_output=True, text=True,
        env=reference.reference_env(), timeout=60,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    job_id = int(added.stdout.strip().splitlines()[-1])

    listed = await run_gw("jobs", "list", "--json", "-c", db_url)
    assert listed.returncode == 0, listed.stderr
    (job,) = json.loads(listed.stdout)
    assert job["id"] == job_id
    assert (job["task_identifier"], job["queue_name"], job["priority"]) == (
        "node_task", "node-queue", 4,
    )
    assert (job["key"], job["max_attempts"], job["flags"]) == ("from-node", 7, {"nf": True})
    assert job["payload"] == {"from": "node", "list": [1, 2, 3]}
    shown = await run_gw("jobs", "show", str(job_id), "--json", "-c", db_url)
    assert json.loads(shown.stdout)["state"] == "ready"
