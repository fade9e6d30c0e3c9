"""The reference's one-shot modes of ``gw run`` (``--schema-only``, ``--cleanup``), its
option spellings, and common options before the command, in real ``gw`` processes."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.gw_process import clean_env
from tests.helpers.paths import GW


async def gw(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [GW, *args], capture_output=True, text=True, env=clean_env(),
        cwd=cwd, timeout=60,
    )


async def test_schema_only_migrates_then_exits_without_tasks(
    empty_db_url: str, tmp_path: Path
) -> None:
    result = await gw("run", "-c", empty_db_url, "-s", "elsewhere", "--schema-only", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    conn = await asyncpg.connect(empty_db_url)
    try:
        latest = await conn.fetchval("select max(id) from elsewhere.migrations")
    finally:
        await conn.close()
    assert latest == 20


async def test_cleanup_runs_the_named_tasks_then_exits(db_url: str, tmp_path: Path) -> None:
    dead = await gw("add-job", "dead", "--queue", "dq", "--max-attempts", "1", "-c", db_url)
    assert (await gw("jobs", "fail", dead.stdout.strip(), "-c", db_url)).returncode == 0
    result = await gw(
        "run", "-c", db_url, "--cleanup", "DELETE_PERMAFAILED_JOBS,GC_JOB_QUEUES", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "DELETE_PERMAFAILED_JOBS: deleted 1", "GC_JOB_QUEUES: deleted 1",
    ]


@pytest.mark.parametrize("value", ["VACUUM", ","])
async def test_a_bad_cleanup_list_is_one_line_and_exit_2(
    db_url: str, tmp_path: Path, value: str
) -> None:
    result = await gw("run", "-c", db_url, "--cleanup", value, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: option --cleanup:"), result.stderr


async def test_common_options_before_the_command(db_url: str) -> None:
    added = await gw("-c", db_url, "add-job", "early")
    assert added.returncode == 0, added.stderr
    listed = await gw("-c", db_url, "--schema", "graphile_worker", "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert f'"id": {added.stdout.strip()}' in listed.stdout


async def test_a_bare_number_for_a_duration_flag_is_exit_2_with_both_readings(
    db_url: str, tmp_path: Path
) -> None:
    result = await gw("run", "-c", db_url, "--once", "--poll-interval", "2000", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: option --poll-interval: 2000: add a unit, e.g. 2000ms or 2000s"
    )


async def test_tasks_module_and_plugins_load_from_the_project_directory(
    db_url: str, tmp_path: Path
) -> None:
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(
        "from graphile_worker_cli import task\n\n"
        "@task('mark')\n"
        "async def mark(payload, ctx):\n"
        "    open('marked', 'w').write('yes')\n"
    )
    (package / "plug.py").write_text(
        "class Plug:\n"
        "    def register(self, hooks):\n"
        "        open('plugged', 'w').write('yes')\n"
    )
    (tmp_path / "worker.toml").write_text('plugins = ["myapp.plug:Plug"]\n')
    assert (await gw("add-job", "mark", "-c", db_url, cwd=tmp_path)).returncode == 0
    result = await gw("run", "--once", "-c", db_url, "--tasks-module", "myapp.tasks",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "marked").read_text() == "yes"
    assert (tmp_path / "plugged").read_text() == "yes"
