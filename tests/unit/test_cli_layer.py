"""The CLI is thin: each command parses, calls a library function, prints. No module of
``cli/`` imports the database driver or the statements, or talks to a connection itself
(``cli/workers_cmd.py`` is still being moved; it is the one exception)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.paths import REPO_ROOT

CLI = REPO_ROOT / "graphile_worker_cli" / "cli"
NOT_YET_MOVED = {"workers_cmd.py"}
FORBIDDEN_MODULES = ("asyncpg", "psycopg", "graphile_worker_cli.queries")
CONNECTION_METHODS = {
    "execute", "executemany", "fetch", "fetchrow", "fetchval", "acquire", "connect",
    "connection", "cursor", "transaction",
}


def _cli_modules() -> list[Path]:
    return sorted(path for path in CLI.glob("*.py") if path.name not in NOT_YET_MOVED)


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith(FORBIDDEN_MODULES):
                found.append(f"{path.name}:{getattr(node, 'lineno', 0)} imports {name}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CONNECTION_METHODS
        ):
            found.append(f"{path.name}:{node.lineno} calls .{node.func.attr}()")
    return found


def test_cli_modules_leave_the_database_to_the_library() -> None:
    modules = _cli_modules()
    assert len(modules) >= 8  # the scan sees the command modules
    problems = [problem for path in modules for problem in _problems(path)]
    assert problems == []


def test_the_scan_catches_a_command_that_talks_to_the_database(tmp_path: Path) -> None:
    sample = tmp_path / "sample_cmd.py"
    sample.write_text(
        "import asyncpg\n"
        "from graphile_worker_cli.queries import cron\n"
        "async def list_command(conn):\n"
        "    return await conn.fetch(cron.KNOWN_CRONTABS.sql('s'))\n"
    )
    assert _problems(sample) == [
        "sample_cmd.py:1 imports asyncpg",
        "sample_cmd.py:2 imports graphile_worker_cli.queries",
        "sample_cmd.py:2 imports graphile_worker_cli.queries.cron",
        "sample_cmd.py:4 calls .fetch()",
    ]
