"""Executable task files run as processes with the reference's environment and stdin, their
exit code read as the outcome, and stopped (with everything they started) when the worker
stops them (tests/unit/test_executable_tasks.py: finding them in the tasks directory)."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import tasks
from graphile_worker_cli.tasks import executable
from tests.helpers.context import make_context, make_job
from tests.helpers.task_programs import RECORD, write_program
from tests.helpers.waiting import wait_until
from tests.helpers.worker import S, add_job, make_options

FAIL = """\
#!/bin/sh
cat > /dev/null
i=1
while [ $i -le 30 ]; do echo "stderr line $i" >&2; i=$((i + 1)); done
echo "on stdout"
exit 3
"""

# Starts a child and waits: stopping the task must stop both.
SLOW = """\
#!/bin/sh
echo $$ > "$OUT/parent.pid"
sleep 60 &
echo $! > "$OUT/child.pid"
wait
"""

STUBBORN = """\
#!/bin/sh
trap '' TERM
echo $$ > "$OUT/parent.pid"
while true; do sleep 0.05; done
"""


@pytest.fixture
def out_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("OUT", str(out))
    monkeypatch.setenv("GRAPHILE_WORKER_JOB_KEY", "from the worker's own environment")
    return out


async def test_a_script_gets_the_reference_environment_and_payload_on_stdin(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path, out_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "tasks"
    write_program(folder, "record.sh", RECORD)
    keyed = await add_job(conn, "record", {"é": 1.0, "list": [1e-05, None]},
                          job_key="k1", priority=3, max_attempts=7)
    plain = await add_job(conn, "record", [1, "two"])
    caplog.set_level(logging.INFO, logger="gw.job")
    worker = await make_options(db_url, tasks=tasks.load_tasks_directory(folder)).init()
    await worker.run_once()
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 0

    env = dict(
        line.split("=", 1)
        for line in (out_dir / f"{keyed}.env").read_text().splitlines()
    )
    run_at = env.pop("GRAPHILE_WORKER_JOB_RUN_AT")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", run_at)
    assert env == {
        "GRAPHILE_WORKER_JOB_ATTEMPTS": "1",
        "GRAPHILE_WORKER_JOB_ID": str(keyed),
        "GRAPHILE_WORKER_JOB_KEY": "k1",
        "GRAPHILE_WORKER_JOB_MAX_ATTEMPTS": "7",
        "GRAPHILE_WORKER_JOB_PRIORITY": "3",
        "GRAPHILE_WORKER_PAYLOAD_FORMAT": "json",
        "GRAPHILE_WORKER_TASK_IDENTIFIER": "record",
    }
    assert (out_dir / f"{keyed}.stdin").read_text() == '{"payload":{"é":1,"list":[0.00001,null]}}'
    assert "GRAPHILE_WORKER_JOB_KEY" not in (out_dir / f"{plain}.env").read_text()
    assert (out_dir / f"{plain}.stdin").read_text() == '{"payload":[1,"two"]}'
    assert [r.getMessage() for r in caplog.records if r.name == "gw.job"] == [
        "hello from the task", "hello from the task",
    ]


async def test_a_failing_script_fails_its_job_with_the_end_of_its_stderr(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path, out_dir: Path
) -> None:
    folder = tmp_path / "tasks"
    write_program(folder, "fail", FAIL)
    write_program(folder, "broken", "not a program at all\n")  # no #! line
    await add_job(conn, "fail", {"x": 1})
    await add_job(conn, "broken", {})
    worker = await make_options(db_url, tasks=tasks.load_tasks_directory(folder)).init()
    await worker.run_once()
    rows = {
        row["identifier"]: row for row in await conn.fetch(
            f"select t.identifier, j.last_error, j.attempts, j.locked_by "
            f"from {S}._private_jobs j join {S}._private_tasks t on t.id = j.task_id"
        )
    }
    tail = "\n".join(f"stderr line {i}" for i in range(11, 31))
    assert rows["fail"]["last_error"] == f"Process exited with code 3:\n{tail}"
    assert rows["fail"]["attempts"] == 1 and rows["fail"]["locked_by"] is None
    assert rows["broken"]["last_error"].startswith(
        f"could not start {folder / 'broken'}: [Errno 8] Exec format error"
    )


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a parent that does not reap counts)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def read_pid(path: Path) -> int:
    async def written() -> bool:
        return path.exists() and path.read_text().strip() != ""

    await wait_until(written)
    return int(path.read_text())


async def test_shutdown_stops_a_running_script_and_what_it_started(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path, out_dir: Path
) -> None:
    folder = tmp_path / "tasks"
    write_program(folder, "slow.sh", SLOW)
    job_id = await add_job(conn, "slow", {})
    worker = await make_options(
        db_url, tasks=tasks.load_tasks_directory(folder), shutdown_grace_period=0.1,
        shutdown_interrupted_job_retry_delay=0.0,
    ).init()
    running = asyncio.create_task(worker.run())
    parent = await read_pid(out_dir / "parent.pid")
    child = await read_pid(out_dir / "child.pid")
    assert not gone(parent) and not gone(child)
    worker.request_shutdown("test")
    await asyncio.wait_for(running, 30)
    assert gone(parent) and gone(child)
    row = await conn.fetchrow(
        f"select attempts, locked_by, last_error from {S}._private_jobs where id = $1", job_id
    )
    assert row is not None and dict(row) == {"attempts": 0, "locked_by": None, "last_error": None}


async def test_stop_process_kills_a_script_that_ignores_sigterm(
    tmp_path: Path, out_dir: Path
) -> None:
    program = write_program(tmp_path, "stubborn.sh", STUBBORN)
    process = await asyncio.create_subprocess_exec(str(program), start_new_session=True)
    parent = await read_pid(out_dir / "parent.pid")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await executable.stop_process(process, grace=0.3)
    assert loop.time() - started >= 0.3
    assert process.returncode == -9 and gone(parent)


async def test_an_aborted_job_stops_its_script(tmp_path: Path, out_dir: Path) -> None:
    program = write_program(tmp_path, "slow.sh", SLOW)
    definition = executable.executable_task(program, "slow")
    ctx = make_context(make_job({}, identifier="slow"))
    running = asyncio.create_task(definition(ctx))
    child = await read_pid(out_dir / "child.pid")
    ctx.abort_signal.set("worker shutdown")
    outcome: Any = await asyncio.wait_for(running, 30)
    assert outcome.message == "Process stopped: the job was aborted (worker shutdown)"
    assert gone(child)


GRACEFUL = """\
#!/bin/sh
trap 'echo stopped > "$OUT/stopped"; exit 0' TERM
echo $$ > "$OUT/parent.pid"
while true; do sleep 0.05; done
"""


async def test_a_script_stopping_on_sigterm_within_the_abort_window_is_handed_back(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path, out_dir: Path
) -> None:
    folder = tmp_path / "tasks"
    write_program(folder, "graceful.sh", GRACEFUL)
    job_id = await add_job(conn, "graceful", {})
    worker = await make_options(
        db_url, tasks=tasks.load_tasks_directory(folder), shutdown_grace_period=0.1,
        shutdown_abort_timeout=3600, shutdown_interrupted_job_retry_delay=0.0,
    ).init()
    running = asyncio.create_task(worker.run())
    parent = await read_pid(out_dir / "parent.pid")
    worker.request_shutdown("test")
    # Returns long before the hour-long window: SIGTERM at the signal, the script exits.
    await asyncio.wait_for(running, 30)
    assert gone(parent) and (out_dir / "stopped").read_text().strip() == "stopped"
    row = await conn.fetchrow(
        f"select attempts, locked_by, last_error from {S}._private_jobs where id = $1", job_id
    )
    assert row is not None and dict(row) == {"attempts": 0, "locked_by": None, "last_error": None}


async def test_a_script_ignoring_sigterm_is_killed_at_the_end_of_the_abort_window(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path, out_dir: Path
) -> None:
    folder = tmp_path / "tasks"
    write_program(folder, "stubborn.sh", STUBBORN)
    job_id = await add_job(conn, "stubborn", {})
    worker = await make_options(
        db_url, tasks=tasks.load_tasks_directory(folder), shutdown_grace_period=0.1,
        shutdown_abort_timeout=0.3, shutdown_interrupted_job_retry_delay=0.0,
    ).init()
    running = asyncio.create_task(worker.run())
    parent = await read_pid(out_dir / "parent.pid")
    loop = asyncio.get_running_loop()
    worker.request_shutdown("test")
    started = loop.time()
    await asyncio.wait_for(running, 30)
    assert gone(parent)
    # Killed at the window's end, not after stop_process's own SIGTERM-to-SIGKILL grace.
    assert loop.time() - started < executable.STOP_GRACE_SECONDS
    row = await conn.fetchrow(
        f"select attempts, locked_by, last_error from {S}._private_jobs where id = $1", job_id
    )
    assert row is not None and dict(row) == {"attempts": 0, "locked_by": None, "last_error": None}
