"""``js_json.stringify`` against Node's own ``JSON.stringify``: the same values, built on
both sides from an exact description (doubles by their bits, strings by their UTF-16 code
units, keys in insertion order), must give the same bytes."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import struct
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import js_json
from graphile_worker_cli.job import RawJobSpec
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers import reference

pytestmark = pytest.mark.interop

# Rebuilds each described value and prints base64(UTF-8 of JSON.stringify(value)), a line
# per value: bytes, so nothing is lost or re-encoded on the way back.
NODE_STRINGIFY = """\
const lines = require("fs").readFileSync(0, "utf8").split("\\n").filter(Boolean);
const view = new DataView(new ArrayBuffer(8));
function build(d) {
  switch (d[0]) {
    case "null": return null;
    case "bool": return d[1];
    case "int": return Number(d[1]);
    case "double": view.setBigUint64(0, BigInt("0x" + d[1])); return view.getFloat64(0);
    case "str": return String.fromCharCode(...d[1]);
    case "list": return d[1].map(build);
    case "dict": {
      const o = {};
      for (const [k, v] of d[1]) {  // as JSON.parse does: "__proto__" is a plain key
        Object.defineProperty(o, String.fromCharCode(...k), {
          value: build(v), enumerable: true, writable: true, configurable: true,
        });
      }
      return o;
    }
  }
  throw new Error("unknown " + d[0]);
}
const out = lines.map((l) => Buffer.from(JSON.stringify(build(JSON.parse(l))), "utf8")
  .toString("base64"));
process.stdout.write(out.join("\\n") + "\\n");
"""

SAFE = 2**53


def code_units(text: str) -> list[int]:
    data = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def describe(value: Any) -> list[Any]:
    if value is None:
        return ["null"]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        assert abs(value) <= SAFE, "Node reads such an integer as a rounded double"
        return ["int", str(value)]
    if isinstance(value, float):
        return ["double", struct.pack(">d", value).hex()]
    if isinstance(value, str):
        return ["str", code_units(value)]
    if isinstance(value, list):
        return ["list", [describe(item) for item in value]]
    assert isinstance(value, dict)
    return ["dict", [[code_units(k), describe(v)] for k, v in value.items()]]


def node_stringify(values: list[Any], tmp_path: Path) -> list[bytes]:
    script = tmp_path / "stringify.cjs"
    script.write_text(NODE_STRINGIFY)
    feed = "".join(json.dumps(describe(v)) + "\n" for v in values)
    result = subprocess.run(
        ["node", str(script)], input=feed, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [base64.b64decode(line) for line in result.stdout.splitlines()]


EDGE_NUMBERS = [
    0.0, -0.0, 1.0, -1.0, 0.1, 0.2 + 0.1, 1 / 3, 100.0, 1.5, -2.5e-3,
    1e-7, 1.5e-7, 1e-6, 1.5e-6, 9.99e-7, 1e-5, 0.00001234, 1e-4, 0.001,
    1e15, 1e16, 1.5e16, 1e17, 123456789012345680.0, 1e20, 1e21, 1.5e21, 9.999e20,
    1e22, 1e100, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308,
    2.0**53, 2.0**53 + 2, 2.0**60, 2.0**70, float(2**63), 4.35, 0.000001, 123e-20,
    1, -1, 0, 42, SAFE, -SAFE, SAFE - 1, 12345678901234,
]

EDGE_STRINGS = [
    "", "plain", "é", "héllo ✓", "\u2028\u2029", "\x7f", "\x00\x01\x1f", "\b\f\n\r\t",
    '"quoted" \\ back/slash', "\ud800", "\udfff", "a\ud800b", "\udc00\ud800",
    "\ud83d\ude00", "😀", "\ud83d", "x\ude00", "\ufeff", "\U0010ffff", "</script>",
]

EDGE_OBJECTS: list[Any] = [
    {"b": 1, "a": 2, "2": 3, "1": 4, "0": 5},
    {"4294967295": 1, "4294967294": 2, "10": 3, "9": 4, "01": 5, "-1": 6, "1.0": 7, "": 8},
    {"99999999999": 1, "4294967293": 2, "x": {"2": [], "1": {}}},
    {"__proto__": 1, "constructor": 2},
    [],
    {},
    [[[]], [{}], None, True, False],
    {"é": "é", "\ud800": "\ud800", "k\n": "v\t"},
]


def random_string(rng: random.Random) -> str:
    pools = [
        lambda: chr(rng.randrange(0x20, 0x7F)),
        lambda: chr(rng.randrange(0, 0x20)),
        lambda: chr(rng.randrange(0x80, 0x800)),
        lambda: chr(rng.randrange(0xD800, 0xE000)),
        lambda: chr(rng.randrange(0x10000, 0x110000)),
        lambda: rng.choice('"\\/\u2028\u2029\x7f'),
    ]
    return "".join(rng.choice(pools)() for _ in range(rng.randrange(0, 12)))


def random_double(rng: random.Random) -> float:
    choice = rng.randrange(5)
    if choice == 0:  # any finite bit pattern
        while True:
            value: float = struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
            if math.isfinite(value):
                return value
    if choice == 1:  # around the places where the notation changes
        return rng.choice([1, -1]) * rng.uniform(1, 10) * 10.0 ** rng.randrange(-9, 24)
    if choice == 2:  # short decimals
        return round(rng.uniform(-1e6, 1e6), rng.randrange(0, 8))
    if choice == 3:  # integral doubles
        return float(rng.randrange(-(2**70), 2**70))
    return rng.random() * 10.0 ** rng.randrange(-320, 309)


def random_key(rng: random.Random) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        return str(rng.randrange(0, 2**33))
    if choice == 1:
        return rng.choice(["0", "1", "00", "01", "-0", "1e3", "4294967294", "4294967295"])
    return random_string(rng)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 4 else 6)
    if choice == 0:
        return rng.choice([None, True, False])
    if choice == 1:
        return rng.randrange(-SAFE, SAFE + 1)
    if choice in (2, 3):
        return random_double(rng)
    if choice in (4, 5):
        return random_string(rng)
    if choice in (6, 7):
        return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(6))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(6))]


def test_stringify_writes_the_bytes_node_writes(tmp_path: Path) -> None:
    rng = random.Random(20240514)
    values: list[Any] = [*EDGE_NUMBERS, *EDGE_STRINGS, *EDGE_OBJECTS]
    values += [random_double(rng) for _ in range(20_000)]
    values += [random_string(rng) for _ in range(2_000)]
    values += [random_value(rng) for _ in range(3_000)]
    expected = node_stringify(values, tmp_path)
    assert len(expected) == len(values)
    mismatches = [
        (value, node, mine)
        for value, node in zip(values, expected, strict=True)
        if (mine := js_json.stringify(value).encode("utf-8")) != node
    ]
    assert not mismatches, mismatches[:5]


def test_integers_beyond_2_53_stay_exact_where_node_has_rounded_them(tmp_path: Path) -> None:
    # Node reads 12345678901234567890 from the database as the nearest double and writes
    # that double; gw writes the integer it holds (a documented difference).
    script = tmp_path / "big.cjs"
    script.write_text(
        "process.stdout.write(JSON.stringify(JSON.parse(process.argv[2])))"
    )
    text = "[12345678901234567890,1152921504606846976,1000000000000000000000,9007199254740993]"
    node = subprocess.run(
        ["node", str(script), text], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert node == "[12345678901234567000,1152921504606847000,1e+21,9007199254740992]"
    assert js_json.stringify(json.loads(text)) == text


NODE_ADD = """\
import { makeWorkerUtils } from %(module)s;
const payloads = JSON.parse(process.argv[3]);
const utils = await makeWorkerUtils({ connectionString: process.argv[2] });
try {
  for (const payload of payloads) await utils.addJob("node_one", payload);
  await utils.addJobs(payloads.map((payload) => ({ identifier: "node_bulk", payload })));
} finally {
  await utils.release();
}
"""

ADDED: list[Any] = [
    {"text": "héllo ✓ \u2028 \"q\" \\", "n": 1.0, "small": 1e-05, "big": 1e21, "z": -0.0},
    {"b": 1, "2": [0.1, 2.5e-7, 123456789.125], "a": {"10": None, "9": True}},
    [1.5, "ü", [], {}],
    "just a string",
    {"\ud83d\ude00": "😀", "unicode": "日本語"},
]


async def test_jobs_added_by_either_side_store_the_same_text(db_url: str, tmp_path: Path) -> None:
    module = (reference.NODE_MODULES / "graphile-worker" / "dist" / "index.js").as_uri()
    script = tmp_path / "add.mjs"
    script.write_text(NODE_ADD % {"module": json.dumps(module)})
    result = await asyncio.to_thread(
        subprocess.run, ["node", str(script), db_url, json.dumps(ADDED)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    async with await WorkerUtils.connect(db_url) as worker_utils:
        for payload in ADDED:
            await worker_utils.add_job("gw_one", payload)
        await worker_utils.add_jobs([("gw_bulk", payload) for payload in ADDED])
        await worker_utils.add_raw_jobs([RawJobSpec("gw_raw", payload) for payload in ADDED])
    conn = await asyncpg.connect(db_url)
    try:
        texts: dict[str, list[str]] = {}
        for row in await conn.fetch(
            "select t.identifier, j.payload::text as payload from graphile_worker._private_jobs j "
            "join graphile_worker._private_tasks t on t.id = j.task_id order by j.id"
        ):
            texts.setdefault(row["identifier"], []).append(row["payload"])
    finally:
        await conn.close()
    assert len(texts["node_one"]) == len(ADDED), texts
    assert texts["gw_one"] == texts["node_one"]
    # add_jobs inserts in its own order, the same for both (the SQL function's).
    assert texts["gw_bulk"] == texts["gw_raw"] == texts["node_bulk"]
    assert sorted(texts["gw_bulk"]) == sorted(texts["gw_one"])
    assert texts["gw_one"][0] == (
        '{"text":"héllo ✓ \u2028 \\"q\\" \\\\","n":1,"small":0.00001,"big":1e+21,"z":0}'
    )
