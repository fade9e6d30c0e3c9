"""Rows gw leaves for PermanentFailure and retry_in, read by the reference (issue 17 items 2
and 3): a job failed for good by gw is in the state the reference's own
``permanently_fail_jobs`` leaves, and a Node worker runs neither it nor a job gw put off."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import PermanentFailure, TaskFailure
from tests.helpers import reference
from tests.helpers.worker import S, add_job, make_options

pytestmark = pytest.mark.interop

COLUMNS = "attempts, max_attempts, last_error, locked_by, locked_at, is_available"
NODE_TASK = "module.exports = async () => {};\n"  # would complete (delete) the job


async def test_a_node_worker_leaves_jobs_gw_failed_for_good_or_put_off(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    declined = await add_job(conn, "decline", None)
    by_node = await add_job(conn, "decline", None)
    later = await add_job(conn, "later", None)

    async def decline(payload: Any) -> None:
        raise PermanentFailure("card declined")

    async def later_task(payload: Any) -> TaskFailure:
        return TaskFailure("busy", retry_in="1h")

    worker = await (
        make_options(db_url, concurrency=1)
        .define_job(decline, "decline").define_job(later_task, "later").init()
    )
    # The second "decline" job is failed by the reference's function, not by the worker.
    await conn.execute(f"update {S}._private_jobs set locked_by = 'x', locked_at = now()"
                       f" where id = $1", by_node)
    await worker.run_once()
    await conn.execute(f"update {S}._private_jobs set locked_by = null, locked_at = null"
                       f" where id = $1", by_node)
    await conn.execute(f"select {S}.permanently_fail_jobs(array[$1::bigint], 'card declined')",
                       by_node)
    state = f"select {COLUMNS} from {S}._private_jobs where id = $1"
    assert dict(await conn.fetchrow(state, declined)) == dict(await conn.fetchrow(state, by_node))

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    control = await add_job(conn, "control", None)  # shows the Node worker does run jobs
    for name in ("decline", "later", "control"):
        (tasks / f"{name}.js").write_text(NODE_TASK)
    node = await asyncio.to_thread(reference.run_reference, db_url, "--once", cwd=tmp_path)
    assert node.returncode == 0, node.stdout + node.stderr
    left = await conn.fetch(f"select id from {S}._private_jobs order by id")
    assert [row["id"] for row in left] == [declined, by_node, later]
    assert control not in [row["id"] for row in left]
