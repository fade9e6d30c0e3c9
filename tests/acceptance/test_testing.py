"""graphile_worker_cli.testing's pytest plugin in a user's own test suite, run by pytest in
a process of its own."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.gw_process import clean_env

USER_TESTS = '''
from graphile_worker_cli import task
from graphile_worker_cli.job import JobSpec
from graphile_worker_cli.testing import assert_job_queued

DONE = []


@task
def welcome(payload, ctx):
    DONE.append(payload["user"])


def test_queue_then_run(gw_utils, gw_run_jobs):
    gw_utils.add_job("welcome", {"user": 7}, JobSpec(queue_name="mail"))
    assert_job_queued(gw_utils.list_jobs(), "welcome", payload={"user": 7}, queue="mail")
    outcomes = gw_run_jobs([welcome])
    assert [o.status for o in outcomes] == ["completed"] and DONE == [7]
    assert gw_utils.list_jobs() == []


def test_each_test_has_its_own_database(gw_utils, gw_database_url):
    assert gw_utils.list_jobs() == []
    assert "/gw_test_" in gw_database_url
'''


@pytest.mark.parametrize("server", ["given", "embedded"])
async def test_pytest_plugin_fixtures_in_a_users_test_suite(
    server: str, pg_admin_url: str, tmp_path: Path,
) -> None:
    (tmp_path / "test_user_tasks.py").write_text(textwrap.dedent(USER_TESTS))
    # No URL: the plugin starts an embedded PostgreSQL for the session.
    env = clean_env(GW_TEST_DATABASE_URL=pg_admin_url)
    if server == "embedded":
        del env["GW_TEST_DATABASE_URL"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-p", "graphile_worker_cli.testing.pytest_plugin",
        "-p", "no:cacheprovider", "-q", "test_user_tasks.py", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, out.decode()
    assert "2 passed" in out.decode()
