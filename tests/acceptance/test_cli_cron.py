"""``gw cron check`` and ``gw cron list`` as a user runs them: a real process and database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from tests.helpers.gw_process import gw

CRONTAB = """\
# two items
0 4 * * 0 send/report ?id=weekly&fill=1h {to: 'ops'}
30 9 * * * tick ?tz=Europe/Paris
"""


async def test_check_prints_next_runs(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    path.write_text(CRONTAB)
    result = await gw("cron", "check", str(path), "--json", "-n", "3")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    weekly, tick = data["items"]
    assert (weekly["id"], weekly["task"]) == ("weekly", "send/report")
    assert weekly["payload"] == {"to": "ops"}
    assert len(weekly["next_runs"]) == 3
    for ts in weekly["next_runs"]:
        moment = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
        assert (moment.isoweekday(), moment.hour, moment.minute) == (7, 4, 0)  # Sundays, UTC
    assert (tick["tz"], tick["dst"], weekly["dst"]) == ("Europe/Paris", "wall", None)
    text = await gw("cron", "check", str(path))
    assert text.code == 0
    assert text.out.startswith(f"{path}: 2 items, valid")
    assert "weekly: 0 4 * * 0 send/report ?id=weekly&fill=1h" in text.out


async def test_check_reports_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    path.write_text("0 4 * * * ok\n\n0 25 * * * bad\n")
    result = await gw("cron", "check", str(path))
    assert result.code == 2
    assert result.out == ""
    assert " ".join(result.err.split()) == (
        f"error: {path}:3: hour field '25': value 25 is out of range; expected 0-23"
    )
    missing = await gw("cron", "check", str(tmp_path / "nope"))
    assert missing.code == 2
    assert "not found" in missing.err


EDGE_LINES = {
    "* * * * * t ?fill=99999999999999w":
        "option fill: invalid fill '99999999999999w': expected at most 366d (52w2d)",
    "* * * * * t ?fill=100000000d":
        "option fill: invalid fill '100000000d': expected at most 366d (52w2d)",
    "* * * * * t {a: " + "[" * 3000 + "]" * 3000 + "}":
        "payload is nested deeper than 128 levels (at character 132); expected at most 128",
    "* * * * * t ?id=foo%0A":
        "option id: invalid id 'foo\\n': expected a letter or _ then letters, digits, - or _",
    "* * * * * t ?tz=localtime":
        "option tz: invalid tz 'localtime': expected an IANA time zone name like "
        "Europe/Paris or UTC",
    "* * * * * " + "t" * 129:
        "invalid task identifier '" + "t" * 129 + "': expected 1 to 128 characters",
}


async def test_check_reports_each_edge_in_one_line_with_exit_2(tmp_path: Path) -> None:
    paths = []
    for number, line in enumerate(EDGE_LINES):
        path = tmp_path / f"crontab{number}"
        path.write_text(f"# line 1 is fine\n{line}\n")
        paths.append(path)
    results = await asyncio.gather(*(gw("cron", "check", str(path)) for path in paths))
    for path, message, result in zip(paths, EDGE_LINES.values(), results, strict=True):
        assert result.code == 2, result.err
        assert result.out == ""
        assert "Traceback" not in result.err
        assert " ".join(result.err.split()) == f"error: {path}:2: {message}"


async def test_check_accepts_a_crontab_that_starts_with_a_byte_order_mark(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crontab"
    path.write_bytes(b"\xef\xbb\xbf# written by an editor that adds a BOM\n0 4 * * * tick\n")
    result = await gw("cron", "check", str(path), "--json")
    assert result.code == 0, result.err
    [item] = json.loads(result.out)["items"]
    assert (item["id"], item["pattern"]) == ("tick", "0 4 * * *")


async def test_list_shows_known_crontabs(
    tmp_path: Path, db_url: str, conn: asyncpg.Connection
) -> None:
    await conn.execute(
        "insert into graphile_worker._private_known_crontabs values "
        "('weekly', '2030-01-01T00:00Z', '2030-01-05T04:00Z'), ('gone', '2029-01-01T00:00Z', null)"
    )
    (tmp_path / "crontab").write_text(CRONTAB)
    result = await gw("cron", "list", "-c", db_url, "--json", cwd=tmp_path)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    rows = {row["id"]: row for row in data["crontabs"]}
    assert rows["weekly"]["known_since"] == "2030-01-01T00:00:00Z"
    assert rows["weekly"]["last_execution"] == "2030-01-05T04:00:00Z"
    next_run = datetime.strptime(rows["weekly"]["next_run"], "%Y-%m-%dT%H:%M:%SZ")
    assert next_run.replace(tzinfo=UTC) > datetime.now(UTC)
    assert (next_run.isoweekday(), next_run.hour) == (7, 4)
    assert rows["gone"] == {
        "id": "gone", "known_since": "2029-01-01T00:00:00Z", "last_execution": None,
        "next_run": None, "in_crontab": False,
    }
    assert data["not_yet_known"] == ["tick"]
    table = await gw("cron", "list", "-c", db_url, cwd=tmp_path)
    assert table.code == 0, table.err
    assert "weekly" in table.out and "never" in table.out
    assert "tick: in the crontab, not known yet" in table.out


async def test_list_on_an_unmigrated_database(empty_db_url: str) -> None:
    result = await gw("cron", "list", "-c", empty_db_url)
    assert result.code == 1
    assert "run gw migrate" in result.err
    assert "Traceback" not in result.err


async def test_gw_run_schedules_the_crontab(
    tmp_path: Path, db_url: str, conn: asyncpg.Connection
) -> None:
    """The scheduler runs inside ``gw run``: a known item is backfilled within its fill."""
    now = datetime.now(UTC)
    last = now.replace(second=0, microsecond=0) - timedelta(minutes=10)
    await conn.execute(
        "insert into graphile_worker._private_known_crontabs values ('ticker', $1, $2)",
        now - timedelta(days=1), last,
    )
    (tmp_path / "crontab").write_text("* * * * * cli_tick ?id=ticker&fill=5m\n")
    # The worker needs a task; it is not cli_tick, so the cron jobs stay in the table.
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "unrelated.py").write_text(
        "def task(payload, ctx):\n    return None\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "graphile_worker_cli", "run", "-c", db_url, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 30
        count = 0
        while asyncio.get_running_loop().time() < deadline and count < 5:
            count = await conn.fetchval("select count(*) from graphile_worker._private_jobs")
            await asyncio.sleep(0.1)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, output.decode()
    rows = await conn.fetch(
        "select payload, run_at from graphile_worker._private_jobs order by run_at"
    )
    first = json.loads(rows[0]["payload"])["_cron"]
    assert first["backfilled"] is True
    # fill=5m: the oldest backfilled minute is at most 5 minutes before the start.
    assert rows[0]["run_at"] >= now - timedelta(minutes=5, seconds=1)
    assert rows[0]["run_at"] > last
    assert len({row["run_at"] for row in rows}) == len(rows)


async def test_gw_run_with_a_bad_crontab_exits_2(tmp_path: Path, db_url: str) -> None:
    (tmp_path / "crontab").write_text("* * * * * t ?bogus=1\n")
    result = await gw("run", "-c", db_url, cwd=tmp_path)
    assert result.code == 2
    assert "crontab:1: unsupported option 'bogus'" in result.err
    assert "Traceback" not in result.err
