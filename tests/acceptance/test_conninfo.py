"""``gw`` commands with libpq's PG* variables and node-postgres's URL forms, and which
commands start the embedded server (and say so in one line)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.database import libpq_variables
from tests.helpers.gw_process import env_without_database
from tests.helpers.paths import GW


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A working directory the embedded server's user can reach (not under pytest's 0700
    tmp root, see tests/integration/test_embedded.py)."""
    path = Path(tempfile.mkdtemp(prefix="gw-conninfo-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def run_gw(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [GW, *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120,
    )


async def test_commands_use_the_pg_variables_and_start_nothing(
    db_url: str, workdir: Path
) -> None:
    env = env_without_database(**libpq_variables(db_url))
    added = await run_gw(workdir, env, "add-job", "from_env", '{"a": 1}')
    assert added.returncode == 0, added.stderr
    listed = await run_gw(workdir, env, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"from_env"' in listed.stdout
    assert added.stderr == listed.stderr == ""
    assert not (workdir / ".gw").exists()


async def test_a_node_style_url_works_for_every_command(db_url: str, workdir: Path) -> None:
    env = env_without_database(DATABASE_URL=f"{db_url}?ssl=0")
    for args in (["migrate"], ["add-job", "x"], ["jobs", "list"], ["workers", "list"]):
        result = await run_gw(workdir, env, *args)
        assert result.returncode == 0, (args, result.stderr)


async def test_commands_that_start_the_embedded_server_say_so_in_one_line(workdir: Path) -> None:
    env = env_without_database()
    data_dir = (workdir / ".gw" / "pgdata").resolve()
    note = (
        "note: no database configured (DATABASE_URL, --connection or a PG* variable): using "
        f"the embedded PostgreSQL server in {data_dir}\n"
    )
    migrated = await run_gw(workdir, env, "migrate")  # logs: the note is a log line there
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stderr.count("using the embedded PostgreSQL server in") == 1
    added = await run_gw(workdir, env, "add-job", "x", '{"a": 1}')
    assert added.returncode == 0, added.stderr
    assert added.stderr == note
    listed = await run_gw(workdir, env, "jobs", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == note
    assert data_dir.is_dir()


async def test_the_embedded_server_is_not_used_when_only_a_pg_variable_is_set(
    workdir: Path,
) -> None:
    # PGPORT alone: libpq's defaults for the rest, and no silent fallback to ./.gw/pgdata.
    result = await run_gw(
        workdir, env_without_database(PGHOST="127.0.0.1", PGPORT="1"), "jobs", "list"
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: could not connect to the server of the PG* environment variables "
        "(PGHOST=127.0.0.1 PGPORT=1): server unreachable"
    )
    assert not (workdir / ".gw").exists()
