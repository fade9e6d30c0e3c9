"""One shell script in the task directory of both workers: the reference and gw run it
with the same environment and the same stdin, and read its exit code alike."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import asyncpg
import pytest

from tests.helpers import reference
from tests.helpers.gw_process import env_without_database
from tests.helpers.paths import GW
from tests.helpers.side_by_side import GW_SCHEMA, NODE_SCHEMA, job_rows

pytestmark = pytest.mark.interop

RECORD = """\
#!/bin/sh
env | grep '^GRAPHILE_WORKER_' | sort > "$PWD/$GRAPHILE_WORKER_JOB_ID.env"
cat > "$PWD/$GRAPHILE_WORKER_JOB_ID.stdin"
[ -n "$FAIL_WITH" ] || exit 0
echo "it went wrong" >&2
exit "$FAIL_WITH"
"""

PAYLOADS = ['{"a": 1.0, "é": "ü", "list": [1e-05, null, "x"]}', "[1, 2, 3]"]


async def test_an_executable_task_runs_alike_on_both_sides(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    sides = {GW_SCHEMA: tmp_path / "gw", NODE_SCHEMA: tmp_path / "node"}
    for folder in sides.values():
        (folder / "tasks").mkdir(parents=True)
        script = folder / "tasks" / "record.sh"
        script.write_text(RECORD)
        script.chmod(0o755)
    migrated = await asyncio.to_thread(
        reference.run_reference, db_url, "--schema-only", schema=NODE_SCHEMA, cwd=sides[NODE_SCHEMA]
    )
    assert migrated.returncode == 0, migrated.stderr
    for schema in sides:
        for payload in PAYLOADS:
            await conn.execute(f"select {schema}.add_job('record', $1::json)", payload)
        await conn.execute(
            f"select {schema}.add_job('record', '{{\"k\": 1}}'::json, job_key => 'key-1', "
            f"priority => 5, max_attempts => 9)"
        )
    node = await asyncio.to_thread(
        reference.run_reference, db_url, "--once", "-j", "1", schema=NODE_SCHEMA,
        cwd=sides[NODE_SCHEMA],
    )
    assert node.returncode == 0, node.stdout + node.stderr
    mine = await asyncio.to_thread(
        subprocess.run, [GW, "run", "--once", "-j", "1", "--tasks", "tasks", "-c", db_url],
        capture_output=True, text=True, env=env_without_database(), timeout=60,
        cwd=sides[GW_SCHEMA],
    )
    assert mine.returncode == 0, mine.stderr
    assert await job_rows(conn, GW_SCHEMA) == await job_rows(conn, NODE_SCHEMA) == []

    for job_id in (1, 2, 3):
        seen = {}
        for schema, folder in sides.items():
            env = (folder / f"{job_id}.env").read_text()
            run_at = re.search(r"^GRAPHILE_WORKER_JOB_RUN_AT=(.*)$", env, re.MULTILINE)
            assert run_at and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", run_at[1])
            # GRAPHILE_WORKER_SCHEMA is how this test picks the reference's schema.
            lines = [
                line for line in env.splitlines()
                if line != run_at[0] and not line.startswith("GRAPHILE_WORKER_SCHEMA=")
            ]
            seen[schema] = (lines, (folder / f"{job_id}.stdin").read_bytes())
        assert seen[GW_SCHEMA] == seen[NODE_SCHEMA]
    assert b'"list":[0.00001,null,"x"]' in (sides[GW_SCHEMA] / "1.stdin").read_bytes()
    assert "GRAPHILE_WORKER_JOB_KEY=key-1" in (sides[GW_SCHEMA] / "3.env").read_text()
    assert "GRAPHILE_WORKER_JOB_KEY" not in (sides[GW_SCHEMA] / "1.env").read_text()


async def test_a_failing_executable_fails_its_job_on_both_sides(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    sides = {GW_SCHEMA: tmp_path / "gw", NODE_SCHEMA: tmp_path / "node"}
    for folder in sides.values():
        (folder / "tasks").mkdir(parents=True)
        script = folder / "tasks" / "record.sh"
        script.write_text(RECORD)
        script.chmod(0o755)
    migrated = await asyncio.to_thread(
        reference.run_reference, db_url, "--schema-only", schema=NODE_SCHEMA, cwd=sides[NODE_SCHEMA]
    )
    assert migrated.returncode == 0, migrated.stderr
    for schema in sides:
        await conn.execute(f"select {schema}.add_job('record', '{{}}'::json)")
    node = await asyncio.to_thread(
        subprocess.run, reference.reference_command("-c", db_url, "--once", "-j", "1"),
        cwd=sides[NODE_SCHEMA], capture_output=True, text=True, timeout=120,
        env={**reference.reference_env(NODE_SCHEMA), "FAIL_WITH": "3"},
    )
    assert node.returncode == 0, node.stdout + node.stderr
    mine = await asyncio.to_thread(
        subprocess.run, [GW, "run", "--once", "-j", "1", "--tasks", "tasks", "-c", db_url],
        capture_output=True, text=True, env=env_without_database(FAIL_WITH="3"), timeout=60,
        cwd=sides[GW_SCHEMA],
    )
    assert mine.returncode == 0, mine.stderr
    (gw_row,) = await job_rows(conn, GW_SCHEMA)
    (node_row,) = await job_rows(conn, NODE_SCHEMA)
    assert gw_row[4:] == node_row[4:] == (1, None, True)
    # The reference rejects with the string "Process exited with code 3", which its error
    # coercion replaces by a generic message; gw keeps the code and the end of stderr (a
    # documented difference).
    assert node_row[3] == "An error occurred"
    assert gw_row[3] == "Process exited with code 3:\nit went wrong"
