"""What each ``gw`` command imports, seen in a fresh process: the start-up of a command is
mostly imports, so a command loads only what it runs (timings are the bench's job,
``python -m bench startup``; these catch a heavy import slipping back in)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.connection_kinds import SCHEMA
from tests.helpers.database import count
from tests.helpers.gw_process import clean_env, write_tasks

# gw's own modules a command must not load unless it runs them (the JSON names those loaded).
OTHER_COMMANDS = {
    f"graphile_worker_cli.cli.{name}"
    for name in ("run_cmd", "migrate_cmd", "jobs_cmd", "admin_cmd", "config_cmd", "cron_cmd",
                 "workers_cmd")
}
GW_MODULES = sorted(OTHER_COMMANDS | {
    "graphile_worker_cli.worker_utils", "graphile_worker_cli.operations",
    "graphile_worker_cli.drivers", "graphile_worker_cli.migrate",
    "graphile_worker_cli.embedded",
})

# Runs gw's entry point as the `gw` script does, then prints the top-level packages (and
# the few submodules named) that were imported.
SCRIPT = """
import json, sys
GW_MODULES = json.loads(sys.argv[1])
sys.argv = ["gw", *sys.argv[2:]]
from graphile_worker_cli.cli.app import main
code = 0
try:
    main()
except SystemExit as exit:
    code = exit.code or 0
watched = {"importlib.metadata", "click", *GW_MODULES}
loaded = sorted({name.split(".")[0] for name in sys.modules} | (watched & set(sys.modules)))
import gc
print(json.dumps({"code": code, "modules": loaded, "gc": gc.isenabled()}))
"""

# Heavy packages a command must not import unless it needs them.
HEAVY = {"pydantic", "pydantic_core", "rich", "typer", "uvloop", "importlib.metadata"}


async def _imported(args: list[str], cwd: Path) -> set[str]:
    return (await _loaded(args, cwd))[0]


async def _loaded(args: list[str], cwd: Path) -> tuple[set[str], bool]:
    """The modules the command imported, and whether the cyclic GC was on at its end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, json.dumps(GW_MODULES), *args, cwd=cwd, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["code"] == 0, err.decode()
    return set(result["modules"]), result["gc"]


async def test_add_job_imports_neither_pydantic_nor_rich_nor_uvloop(
    db_url: str, observer: asyncpg.Connection, tmp_path: Path
) -> None:
    imported, collecting = await _loaded(
        ["add-job", "-c", db_url, "send", '{"to": "a@b"}'], tmp_path
    )
    assert imported & HEAVY == set()
    assert not collecting  # a short command: no cyclic GC (cli/app.py)
    # One connection and one statement: no pool, no operations layer, no other commands
    # (the migration check is imported only when the statement finds the schema wrong).
    assert imported & set(GW_MODULES) == set()
    assert {"click", "asyncpg"} <= imported  # the check sees what the command did load
    assert await count(observer, f"select count(*) from {SCHEMA}._private_jobs") == 1


async def test_run_once_with_function_tasks_imports_no_pydantic_and_no_metadata(
    db_url: str, tmp_path: Path
) -> None:
    tasks = write_tasks(tmp_path, {"noop.py": "async def task(payload, ctx):\n    pass\n"})
    imported, collecting = await _loaded(
        ["run", "--once", "-c", db_url, "--tasks", str(tasks), "--log-format", "plain"],
        tmp_path,
    )
    assert collecting  # a worker keeps the cyclic GC
    # uvloop is the worker's event loop; rich is not needed for plain logs.
    assert imported & HEAVY == {"uvloop"}


@pytest.mark.parametrize(
    ("args", "absent"),
    [
        (["--version"], {"click", "asyncio", "asyncpg"}),
        # The command list comes from app.SUMMARIES: no command module is imported.
        (["--help"], {"asyncio", "asyncpg", *OTHER_COMMANDS}),
        (["add-job", "--help"], {"asyncio", "asyncpg"}),
    ],
)
async def test_version_and_help_load_no_database_code(
    args: list[str], absent: set[str], tmp_path: Path
) -> None:
    imported = await _imported(args, tmp_path)
    assert imported & (HEAVY | absent) == set()
