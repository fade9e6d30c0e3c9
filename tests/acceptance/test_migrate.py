"""``gw migrate`` as a real process: reports, concurrent processes, exit codes for newer
schemas and bad connection strings, ``python -m graphile_worker_cli``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import asyncpg
import pytest

from tests.helpers.migrations import ODD_SCHEMA
from tests.helpers.paths import GW, REPO_ROOT


def run_gw(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GW, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


# --- the command ----------------------------------------------------------------------------


def test_cli_migrates_and_reports(empty_db_url: str) -> None:
    first = run_gw("migrate", "-c", empty_db_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Schema graphile_worker is at migration 20 (applied 20 now)")
    again = run_gw("migrate", "-c", empty_db_url, "--schema", ODD_SCHEMA)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith('Schema odd "name" is at migration 20 (applied 20 now)')
    status = run_gw("migrate", "-c", empty_db_url, "--status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["migration"] == 20
    assert json.loads(status.stdout)["applied"] == []


def test_four_cli_processes_at_once_all_succeed(empty_db_url: str) -> None:
    processes = [
        subprocess.Popen(
            [GW, "migrate", "-c", empty_db_url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs
    applied = [int(out.split("(applied ")[1].split(" ")[0]) for out, _ in outputs]
    assert sum(applied) == 20

    async def ledger() -> list[int]:
        connection = await asyncpg.connect(empty_db_url)
        try:
            return [r[0] for r in await connection.fetch(
                "select id from graphile_worker.migrations order by id"
            )]
        finally:
            await connection.close()

    assert asyncio.run(ledger()) == list(range(1, 21))


def _assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert text in lines[0]


def test_cli_schema_too_new_exits_57(db_url: str) -> None:
    async def add_row() -> None:
        connection = await asyncpg.connect(db_url)
        try:
            await connection.execute(
                "insert into graphile_worker.migrations (id, breaking) values (21, true)"
            )
        finally:
            await connection.close()

    asyncio.run(add_row())
    _assert_one_line_error(run_gw("migrate", "-c", db_url), 57, "breaking migration 21")


def test_cli_newer_non_breaking_warns_and_exits_0(db_url: str) -> None:
    async def add_row() -> None:
        connection = await asyncpg.connect(db_url)
        try:
            await connection.execute(
                "insert into graphile_worker.migrations (id, breaking) values (21, false)"
            )
        finally:
            await connection.close()

    asyncio.run(add_row())
    result = run_gw("migrate", "-c", db_url)
    assert result.returncode == 0, result.stderr
    assert "at migration 21 (applied 0 now)" in result.stdout
    assert "newer than this gw knows" in result.stderr


@pytest.mark.parametrize(
    ("url", "code", "text"),
    [
        ("not a url", 2, "invalid connection string"),
        ("postgres://postgres@127.0.0.1:99999/x", 2, "invalid connection string"),
        ("postgres://postgres@127.0.0.1:1/postgres", 1, "server unreachable"),
    ],
)
def test_cli_bad_connection_is_one_line(url: str, code: int, text: str) -> None:
    _assert_one_line_error(run_gw("migrate", "-c", url), code, text)


def test_cli_module_entry_point_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "graphile_worker_cli", "migrate", "--help"],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert result.returncode == 0 and "--status" in result.stdout
