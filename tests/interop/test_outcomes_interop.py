"""The same jobs, run once by gw and once by the reference (`--once -j 1` each, on two
schemas of one database, filled by the same SQL), leave the same rows: per-item outcomes
for a list returned for an array payload, `false` as a success, and the payload a failed
batch keeps, byte for byte."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import asyncpg
import pytest

from tests.helpers import reference
from tests.helpers.gw_process import env_without_database
from tests.helpers.paths import GW
from tests.helpers.side_by_side import GW_SCHEMA, NODE_SCHEMA, job_rows

pytestmark = pytest.mark.interop

# (task, payload text as a producer might write it, queue). Spaces, escapes, `1.0`, `1E21`
# and key order are deliberate: both sides must rewrite the failed items the same way.
JOBS: list[tuple[str, str, str | None]] = [
    ("per_item", '[{"n": 1}, {"n": 2, "fail": "two"}, {"n": 3.0, "é": "ü ✓", "refuse": "no"}]',
     None),
    ("per_item", '[{"n": 1}, {"n": 2, "fail": "two"}, {"n": 3.0, "é": "ü ✓", "refuse": "no"}]',
     "serial"),
    ("per_item", '[{"fail": "numbers", "v": [1e-7, 0.00001, 1E21, 100, -0, -0.0, 1.5e300, '
                 '1e400, 0.1, 123456.789, 2.50, 9007199254740993e0]}, {"ok": 1}]', None),
    ("per_item", '[{"fail": "keys", "b": 1, "10": 2, "a": 3, "2": 4, "01": 5, '
                 '"4294967295": 6, "4294967294": 7}]', None),
    ("per_item", r'[{"fail": "strings", "s": "\u00e9\ud83d\ude00\u2028 \"q\" \\ \n\t'
                 r'\u0001 é \/\u007f"}]', None),
    ("per_item", '[{"fail": ""}, {"ok": true}]', None),
    ("per_item", '[{"fail": "a"}, {"fail": "b"}, {"refuse": "c"}]', None),
    ("per_item", '[{"fail": "nested", "x": [[], {}, [1, [2, {"3": null, "1": false}]]]}]', None),
    ("per_item", '[{"fail": "dup", "a": 1, "a": 2}, 5, "five", null]', None),
    ("per_item", '[{"ok": 1}, {"ok": 2}]', None),
    ("per_item", "[]", None),
    ("returns_false", '{"x": 1}', None),
    ("returns_false", "[1, 2]", None),
    ("wrong_length", '[{"fail": "x"}, {"fail": "y"}]', None),
    ("list_for_object", '{"fail": "not an array"}', None),
]
# Documented differences, checked on their own below.
EXPLODE = ("explode", "[1, 2]", None)
BIG = ("per_item", '[{"fail": "big", "id": 12345678901234567890}]', None)

NODE_TASKS = {
    "per_item.js": """\
module.exports = async (payload) => payload.map((item) =>
  item && item.fail !== undefined ? Promise.reject(new Error(item.fail))
  : item && item.refuse !== undefined ? Promise.reject(item.refuse)
  : Promise.resolve(item));
""",
    "returns_false.js": "module.exports = async () => false;\n",
    "wrong_length.js": "module.exports = async () => [null];\n",
    "list_for_object.js": "module.exports = async () => [new Error('x')];\n",
    "explode.js": "module.exports = async () => { throw new Error('boom'); };\n",
}

GW_TASKS = {
    "per_item.py": """\
import asyncio

from graphile_worker_cli.tasks import TaskFailure


async def task(payload, ctx):
    return [_result(item) for item in payload]


def _result(item):
    if isinstance(item, dict) and "fail" in item:
        return ValueError(item["fail"])
    if isinstance(item, dict) and "refuse" in item:
        return TaskFailure(item["refuse"])
    return asyncio.sleep(0, item)
""",
    "returns_false.py": "def task(payload):\n    return False\n",
    "wrong_length.py": "def task(payload):\n    return [None]\n",
    "list_for_object.py": "def task(payload):\n    return [ValueError('x')]\n",
    "explode.py": "def task(payload):\n    raise ValueError('boom')\n",
}


def write_tasks(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)


async def add_jobs(conn: asyncpg.Connection, schema: str) -> None:
    for task, payload, queue in [*JOBS, EXPLODE, BIG]:
        await conn.execute(
            f"select {schema}.add_job($1, $2::json, queue_name => $3)", task, payload, queue
        )


async def test_same_jobs_leave_the_same_rows_on_both_sides(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    write_tasks(tmp_path / "node" / "tasks", NODE_TASKS)
    write_tasks(tmp_path / "gw_tasks", GW_TASKS)
    migrated = await asyncio.to_thread(
        reference.run_reference, db_url, "--schema-only", schema=NODE_SCHEMA, cwd=tmp_path / "node"
    )
    assert migrated.returncode == 0, migrated.stderr
    await add_jobs(conn, GW_SCHEMA)
    await add_jobs(conn, NODE_SCHEMA)

    node = await asyncio.to_thread(
        reference.run_reference, db_url, "--once", "-j", "1", schema=NODE_SCHEMA,
        cwd=tmp_path / "node",
    )
    assert node.returncode == 0, node.stdout + node.stderr
    mine = await asyncio.to_thread(
        subprocess.run,
        [GW, "run", "--once", "-j", "1", "--tasks", str(tmp_path / "gw_tasks"), "-c", db_url,
         "--schema", GW_SCHEMA],
        capture_output=True, text=True, env=env_without_database(), timeout=60,
    )
    assert mine.returncode == 0, mine.stderr

    gw_rows, node_rows = await job_rows(conn, GW_SCHEMA), await job_rows(conn, NODE_SCHEMA)
    count = len(JOBS)
    explode_id, big_id = count + 1, count + 2
    plain = [(a, b) for a, b in zip(gw_rows, node_rows, strict=True) if a[0] < explode_id]
    assert len(plain) == 9  # the jobs with failed items, on both sides; the others are gone
    for gw_row, node_row in plain:
        assert gw_row == node_row

    by_id = {gw_row[0]: gw_row for gw_row, _ in plain}
    assert by_id[1][2:5] == (
        '[{"n":2,"fail":"two"},{"n":3,"é":"ü ✓","refuse":"no"}]', "Batch failures:\ntwo\nno", 1
    )
    assert by_id[3][2] == (
        '[{"fail":"numbers","v":[1e-7,0.00001,1e+21,100,0,0,1.5e+300,null,0.1,123456.789,2.5,'
        '9007199254740992]}]'
    )
    assert by_id[4][2] == (
        '[{"2":4,"10":2,"4294967294":7,"fail":"keys","b":1,"a":3,"01":5,"4294967295":6}]'
    )
    assert by_id[5][2] == '[{"fail":"strings","s":"é😀\u2028 \\"q\\" \\\\ \\n\\t\\u0001 é /\x7f"}]'
    assert by_id[6][2:4] == ('[{"fail":""}]', "Batch failures:\n")

    # The documented differences: a raised exception is `Type: message` in gw, and an
    # integer beyond 2^53 stays exact in gw where Node has rounded it to a double.
    gw_by_id = {row[0]: row for row in gw_rows}
    node_by_id = {row[0]: row for row in node_rows}
    assert (gw_by_id[explode_id][3], node_by_id[explode_id][3]) == ("ValueError: boom", "boom")
    assert gw_by_id[explode_id][2] == node_by_id[explode_id][2] == "[1, 2]"
    assert gw_by_id[big_id][2] == '[{"fail":"big","id":12345678901234567890}]'
    assert node_by_id[big_id][2] == '[{"fail":"big","id":12345678901234567000}]'


async def test_a_lone_surrogate_in_failed_items_stops_the_reference_not_gw(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    # The reference sends the failed items inside one JSON document that PostgreSQL
    # decodes, and a lone surrogate escape is an error there: its worker exits, the job
    # stays locked. gw sends the payload as a json value of its own, which PostgreSQL
    # stores as it is.
    write_tasks(tmp_path / "node" / "tasks", NODE_TASKS)
    write_tasks(tmp_path / "gw_tasks", GW_TASKS)
    migrated = await asyncio.to_thread(
        reference.run_reference, db_url, "--schema-only", schema=NODE_SCHEMA, cwd=tmp_path / "node"
    )
    assert migrated.returncode == 0, migrated.stderr
    payload = r'[{"fail": "lone", "s": "a\ud800b"}, {"ok": 1}]'
    for schema in (GW_SCHEMA, NODE_SCHEMA):
        await conn.execute(f"select {schema}.add_job('per_item', $1::json)", payload)
    node = await asyncio.to_thread(
        reference.run_reference, db_url, "--once", "-j", "1", schema=NODE_SCHEMA,
        cwd=tmp_path / "node",
    )
    assert node.returncode != 0
    assert "Unicode low surrogate must follow a high surrogate" in node.stdout + node.stderr
    mine = await asyncio.to_thread(
        subprocess.run,
        [GW, "run", "--once", "-j", "1", "--tasks", str(tmp_path / "gw_tasks"), "-c", db_url],
        capture_output=True, text=True, env=env_without_database(), timeout=60,
    )
    assert mine.returncode == 0, mine.stderr
    (gw_row,) = await job_rows(conn, GW_SCHEMA)
    assert gw_row[2:5] == (r'[{"fail":"lone","s":"a\ud800b"}]', "Batch failures:\nlone", 1)
    (node_row,) = await job_rows(conn, NODE_SCHEMA)
    assert node_row[2] == payload and node_row[6] is False  # unchanged, and still locked
