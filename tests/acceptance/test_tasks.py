"""Bad tasks as ``gw run`` users see them: one line on stderr and exit code 2."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from graphile_worker_cli.errors import EXIT_USAGE
from tests.helpers.paths import FIXTURES, REPO_ROOT


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--tasks", "tests/fixtures/tasks_broken"],
            "error: could not import task file tests/fixtures/tasks_broken/bad.py: "
            "ModuleNotFoundError: No module named 'a_module_that_does_not_exist_gw'",
        ),
        (
            ["--tasks", "tests/fixtures/no_such_dir"],
            "error: tasks directory tests/fixtures/no_such_dir does not exist; "
            "expected a directory of .py task files",
        ),
        (
            [
                "--tasks",
                "tests/fixtures/tasks_basic",
                "--tasks-module",
                "gw_fixture_tasks_dup_module",
            ],
            'error: task "send_email" is defined twice: in '
            "tests/fixtures/tasks_basic/send_email.py and in module "
            "gw_fixture_tasks_dup_module (send_email_again); "
            "each task identifier must be defined once",
        ),
    ],
)
async def test_gw_run_reports_bad_tasks_in_one_line(args: list[str], expected: str) -> None:
    env = {
        **os.environ,
        # Never reached: tasks are loaded before any connection is made.
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/gw_never_connected",
        "PYTHONPATH": str(FIXTURES / "tasks_modules"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "graphile_worker_cli",
        "run",
        "--once",
        "--log-format",
        "plain",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == EXIT_USAGE
    errors = [line for line in stderr.decode().splitlines() if line.startswith("error:")]
    assert errors == [expected]
    assert "Traceback" not in stderr.decode()
