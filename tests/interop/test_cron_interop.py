"""Cron exactly once across a mixed fleet: three gw schedulers and the Node reference.

The reference's clock cannot be mocked, so the overlap comes from backfill: the crontab
item is known with a last execution two hours ago and ``fill=1d``, so every scheduler, gw
and reference alike, wants the same 120 minutes at once. A transaction holds the item's
known_crontabs row until all four are blocked on their first claim, then lets them race.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from graphile_worker_cli import db
from graphile_worker_cli.cron import (
    CrontabError,
    MockClock,
    json5,
    parse_crontab,
    parse_crontab_file,
)
from graphile_worker_cli.cron.matcher import floor_minute
from graphile_worker_cli.cron.scheduler import format_ts, run_scheduler
from tests.helpers import reference

pytestmark = pytest.mark.interop

SCHEMA = "graphile_worker"
CRONTAB = "* * * * * cron_interop_task ?id=shared_tick&fill=1d {origin: 'crontab', n: 1}\n"


async def wait_for(conn: asyncpg.Connection, sql: str, expected: object, what: str) -> None:
    """Poll a query until it returns ``expected`` (bounded: 30 s)."""
    deadline = asyncio.get_running_loop().time() + 30
    value = None
    while asyncio.get_running_loop().time() < deadline:
        value = await conn.fetchval(sql)
        if value == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: last value {value!r}")


async def test_gw_schedulers_and_reference_schedule_each_minute_exactly_once(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "crontab"
    path.write_text(CRONTAB)
    (tmp_path / "tasks").mkdir()
    items = parse_crontab_file(path)
    started = datetime.now(UTC)
    last = floor_minute(started) - timedelta(hours=2)
    await conn.execute(
        "insert into graphile_worker._private_known_crontabs values ('shared_tick', $1, $2)",
        started - timedelta(days=2), last,
    )
    blocker = await asyncpg.connect(db_url)
    hold = blocker.transaction()
    await hold.start()
    await blocker.execute(
        "select 1 from graphile_worker._private_known_crontabs "
        "where identifier = 'shared_tick' for update"
    )
    clock = MockClock(datetime.now(UTC))  # gw's schedulers see this moment, frozen
    proc = await reference.start_reference(db_url, "--crontab", str(path), cwd=tmp_path)
    pools = [await db.create_pool(db_url, min_size=1, max_size=2) for _ in range(3)]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_scheduler(pool, SCHEMA, items, stop=stop, clock=clock))
        for pool in pools
    ]
    try:
        # Everyone (3 gw + the reference) is blocked on claiming the first minute.
        await wait_for(
            conn,
            "select count(*) from pg_stat_activity where datname = current_database() "
            "and wait_event_type = 'Lock'",
            4,
            "four schedulers blocked on the known_crontabs row",
        )
        await hold.rollback()
        await clock.wait_for_sleepers(3, timeout=60)  # gw's three finished their backfill
        await wait_for(
            conn,
            "select last_execution >= date_trunc('minute', now()) - interval '1 minute' "
            "from graphile_worker._private_known_crontabs where identifier = 'shared_tick'",
            True,
            "the backfill to reach the present",
        )
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        for pool in pools:
            await pool.close()
        await blocker.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), 30)
    rows = await conn.fetch(
        "select p.payload, p.run_at from graphile_worker._private_jobs p "
        "join graphile_worker._private_tasks t on t.id = p.task_id "
        "where t.identifier = 'cron_interop_task' order by p.run_at"
    )
    assert rows, output.decode()
    stamps = [json.loads(row["payload"])["_cron"]["ts"] for row in rows]
    assert len(stamps) == len(set(stamps)), "a minute was scheduled twice"
    expected = [format_ts(last + timedelta(minutes=i)) for i in range(1, len(rows) + 1)]
    assert stamps == expected  # every minute since the last execution, in order, no gaps
    assert len(rows) >= 120
    assert rows[-1]["run_at"] >= floor_minute(clock.now())
    for row, ts in zip(rows, stamps, strict=True):
        payload = json.loads(row["payload"])
        # Past gw's frozen minute only the reference schedules (a live tick if a minute
        # boundary passed during the test); up to it, everything is backfill.
        backfilled = payload["_cron"]["backfilled"] if row["run_at"] > clock.now() else True
        assert payload == {
            "origin": "crontab", "n": 1, "_cron": {"ts": ts, "backfilled": backfilled},
        }
        assert format_ts(row["run_at"]) == ts


# The reference's own parser, called on each line; prints what it made of them as JSON.
PARSE_WITH_REFERENCE = """\
import { readFileSync } from "fs";
import { parseCrontab } from %(module)s;
const lines = JSON.parse(readFileSync(process.argv[2], "utf8"));
console.log(JSON.stringify(lines.map((line) => {
  try {
    const [item] = parseCrontab(line);
    return { ok: true, match: item.match.parsedCronMatch, task: item.task,
             identifier: item.identifier, options: item.options,
             payload: JSON.stringify(item.payload) };
  } catch (e) {
    return { ok: false, error: e.message };
  }
})));
"""

AGREED_LINES = [
    "* * * * * t",
    "*/7 0-23 1,15,31 */5 7 a/b:c-d_e",
    "59,0,30-31 23 * 2 0-6 task",
    "0 4 * * 5-7 t ?id=_x-1&fill=4w3d2h1m30s&max=7&queue=q-1_:x&priority=-3",
    "* * * * * t ?jobKey=a+b%21&jobKeyMode=preserve_run_at",
    "* * * * * t ?jobKey=k",
    "* * * * * t ?jobKey=a=b&",
    "* * * * * t ?jobKey=%zz%41",
    "\t0  1\t* * *   t   ?id=spaced   {a: 'b c'}  ",
    "* * * * * t ?jobKeyMode=replace",
    "* * * * * t {a: 1, 'b': [1, 2,], \"c\": {d: null}, e: .5, f: 0x10, // c\n}",
    "* * * * * t ?fill=1m {}",
    # rejected by both
    "60 * * * * t",
    "* 24 * * * t",
    "* * 0 * * t",
    "* * * 13 * t",
    "* * * * 8 t",
    "*/0 * * * * t",
    "5-5 * * * * t",
    "1-5/2 * * * * t",
    "* * * * t",
    "* * * * * 9t",
    "* * * * * t ?nope=1",
    "* * * * * t ?id=a&id=b",
    "* * * * * t ?id=1a",
    "* * * * * t ?fill=1y",
    "* * * * * t ?fill",
    "* * * * * t ?max=x",
    "* * * * * t ?queue=a/b",
    "* * * * * t ?priority=1.5",
    "* * * * * t ?jobKeyMode=unsafe_dedupe",
    "* * * * * t {a: }",
    "* * * * * t junk",
    "* * * * * t [1]",
    "* * * * * t ?",
    "* * * * * t ?id=x {a: 1} trailing",
    # option values: JavaScript's $ is the very end, its . no line break
    "* * * * * t ?id=foo%0A",
    "* * * * * t ?fill=1h%0A",
    "* * * * * t ?queue=q%0A",
    "* * * * * t ?max=3%0A",
    "* * * * * t ?priority=3%0A",
    "* * * * * t ?jobKey=a%0Ab",
    "* * * * * t ?jobKey=k%0A",
    "* * * * * t ?jobKey=a%0D",
    "* * * * * t ?jobKey=a%E2%80%A8",
    "* * * * * t ?jobKey=a%E2%80%A9b",
    "* * * * * t ?jobKeyMode=replace%0A",
    "* * * * * t ?jobKey=%FF%E2%80%C0%AF",
    "* * * * * t ?jobKey=%F0%9F%98%80%ED%A0%80",
    "* * * * * t ?i%64=x&%71ueue=q+r",
    "* * * * * t ?" + "&" * 999 + "id=kept",
    "* * * * * t ?" + "&" * 1000 + "id=dropped",
    # white space: JavaScript's trim() and \s
    "\ufeff0 4 * * * bom_first",
    "\ufeff# a comment\n0 4 * * * after_bom_comment",
    "0 4 * * *\ufeffbom_between\u3000",
    "\u20030\u00a04\u2000*\u1680*\u205f*\u202ft\u3000?id=odd_spaces",
    "* * * * *\x85t",
    "* * * * *\x1ct",
    "\x1f* * * * * t",
    "* * * * * t\x85",
    "* * * * * t {a: 'x\u2028y'}",
    "* * * * * t {a: 'x\u2029y'}",
    "* * * * * t {a: 'x\ry'}",
    "* * * * * t {a: 'x\\u2028y'}",
    # numbers with many digits
    "0" * 300 + "5 */" + "0" * 300 + "7 * * * t",
    "1-" + "9" * 300 + " * * * * t",
    "* * * * * t ?priority=-0000000000000000001&max=000000000000000000000009",
    "* * * * * t ?fill=" + "0" * 300 + "1h",
    # JSON5 payloads
    "* * * * * t {a: 01}",
    "* * * * * t {a: -00.5}",
    "* * * * * t {\\u0061: 1, b\\u0063: 2}",
    "* * * * * t {\\u0031: 1}",
    "* * * * * t {\u00e4: 1, \u03c0\u0301: 2}",
    "* * * * * t {\u2118: 1}",
    "* * * * * t {\u0560: 1}",
    "* * * * * t {a: 12345678901234567890, b: 9007199254740993, c: 0x1fffffffffffff1}",
    "* * * * * t {a: 1.0, b: -0, c: 1e3, d: 1e21, e: 123456789012345678901234}",
    "* * * * * t {b: 1, '2': 2, '1': 3, '01': 4, '4294967295': 5, '4294967294': 6}",
    "* * * * * t {a: '\\uD83D\\uDE00 \\uD800'}",
    "* * * * * t {__proto__: 1, constructor: 2}",
    "* * * * * t {a: 1, a: 2, b: 3}",
    "* * * * * t {a: [{}, [], '', \"\"]}",
    "* * * * * t {a:\u3000\u00a01}",
]
# Accepted by the reference but rejected by gw when read (they fail later there, or
# cannot be stored in PostgreSQL's json, or would make gw's scheduler fail).
GW_STRICTER = [
    "* * * * * t ?max=0",
    "* * * * * t ?jobKey=",
    "* * * * * t ?priority=99999",
    "* * * * * t ?max=" + "9" * 400,
    "* * * * * " + "t" * 129,
    "* * * * * t ?fill=367d",
    "* * * * * t ?fill=100000000d",
    "* * * * * t ?fill=99999999999999w",
    "* * * * * t {a: [" + "[" * 3000 + "]" * 3000 + "]}",
    "* * * * * t {a: NaN}",
    "* * * * * t {a: -Infinity}",
]


async def run_node(tmp_path: Path, script: str, data: object) -> Any:
    """Run an ES module with ``data`` (as a JSON file named by argv[2]); its JSON output."""
    path = tmp_path / f"probe{len(list(tmp_path.glob('probe*.mjs')))}.mjs"
    path.write_text(script)
    arguments = path.with_suffix(".json")
    arguments.write_text(json.dumps(data))
    proc = await asyncio.create_subprocess_exec(
        "node", str(path), str(arguments),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_parser_agrees_with_the_reference(tmp_path: Path) -> None:
    module = reference.NODE_MODULES / "graphile-worker" / "dist" / "crontab.js"
    lines = AGREED_LINES + GW_STRICTER
    results = await run_node(
        tmp_path, PARSE_WITH_REFERENCE % {"module": json.dumps(str(module))}, lines
    )
    for line, ref in zip(lines, results, strict=True):
        try:
            [item] = parse_crontab(line)
        except CrontabError as error:
            if line in GW_STRICTER:
                assert ref["ok"], f"{line!r}: the reference rejects it too"
            else:
                assert not ref["ok"], f"{line!r}: gw rejects ({error}), the reference accepts"
            continue
        assert line not in GW_STRICTER, f"{line!r}: gw accepts it"
        assert ref["ok"], f"{line!r}: gw accepts, the reference says {ref['error']}"
        match = ref["match"]
        timer = item.timer
        assert list(timer.minutes) == match["minutes"], line
        assert list(timer.hours) == match["hours"], line
        assert list(timer.days) == match["dates"], line
        assert list(timer.months) == match["months"], line
        assert list(timer.dows) == match["dows"], line
        assert (item.task_identifier, item.identifier) == (ref["task"], ref["identifier"])
        options = ref["options"]
        assert item.fill.duration.total_seconds() * 1000 == options["backfillPeriod"], line
        assert item.max_attempts == options.get("maxAttempts"), line
        assert item.queue_name == options.get("queueName"), line
        assert item.priority == options.get("priority"), line
        assert item.job_key == options.get("jobKey"), line
        assert item.job_key_mode == options.get("jobKeyMode"), line
        payload = json.loads(ref["payload"])
        assert item.payload == payload, line
        assert json.dumps(item.payload) == json.dumps(payload), line  # order, int or float


MATCH_WITH_REFERENCE = """\
import { readFileSync } from "fs";
import { parseCrontab } from %(module)s;
const { lines, stamps } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const items = parseCrontab(lines.join("\\n"));
console.log(JSON.stringify(items.map((item) => stamps.map((ms) => {
  const d = new Date(ms);
  return item.match({ min: d.getUTCMinutes(), hour: d.getUTCHours(), date: d.getUTCDate(),
                      month: d.getUTCMonth() + 1, dow: d.getUTCDay() });
}))));
"""


async def test_matching_agrees_with_the_reference(tmp_path: Path) -> None:
    lines = [
        "* * * * * every ?id=a",
        "0 9 * * 0 sunday ?id=b",
        "*/20 8-18 * * 1-5 office ?id=c",
        "0 0 13 * 5 either ?id=d",
        "30 12 1,15 * * twice ?id=e",
        "0 0 * 2 7 feb_sundays ?id=f",
        "5 4 29 2 * leap ?id=g",
        "0,30 */6 1-7 */3 6 mixed ?id=h",
    ]
    # Every 37 minutes over about 3 years: all weekdays, hours and month ends come round.
    start = datetime(2030, 1, 1, tzinfo=UTC)
    stamps = [start + timedelta(minutes=37 * i) for i in range(45_000)]
    # Plus midnight, 09:00 and 04:05 of every day of those years (the rarer patterns).
    for day in range(365 * 3 + 1):
        midnight = start + timedelta(days=day)
        stamps += [midnight, midnight + timedelta(hours=9), midnight + timedelta(minutes=245)]
    module = reference.NODE_MODULES / "graphile-worker" / "dist" / "crontab.js"
    script = tmp_path / "match.mjs"
    script.write_text(MATCH_WITH_REFERENCE % {"module": json.dumps(str(module))})
    arguments = tmp_path / "args.json"
    arguments.write_text(
        json.dumps({"lines": lines, "stamps": [int(s.timestamp() * 1000) for s in stamps]})
    )
    proc = await asyncio.create_subprocess_exec(
        "node", str(script), str(arguments),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    expected = json.loads(out)
    items = parse_crontab("\n".join(lines))
    for item, reference_matches in zip(items, expected, strict=True):
        ours = [item.matches(ts) for ts in stamps]
        assert any(ours), item.identifier
        mismatches = [
            ts for ts, a, b in zip(stamps, ours, reference_matches, strict=True) if a != b
        ]
        assert mismatches == [], f"{item.identifier}: first mismatch at {mismatches[:1]}"


# The reference's JSON5 on a text: what JSON.stringify makes of the value, or null.
JSON5_WITH_REFERENCE = """\
import { readFileSync } from "fs";
import JSON5 from %(module)s;
console.warn = () => {};  // json5 warns about raw U+2028 in strings
const texts = JSON.parse(readFileSync(process.argv[2], "utf8"));
console.log(JSON.stringify(texts.map((text) => {
  try { return JSON.stringify(JSON5.parse(text)); } catch (e) { return null; }
})));
"""

# Pieces of JSON5 texts, valid and not: mutations of valid payloads built from them.
JSON5_PIECES = [
    "{", "}", "[", "]", ":", ",", " ", "\t", "\n", "\r", "\u2028", "\u00a0", "\ufeff", "\u3000",
    "\x85", "\x0b", "a", "$", "_", "\u00e4", "\u0301", "\u0560", "\u2118", "\u200c",
    "\\u0061", "\\u0031", "\\u200c", "\\x41", "\\", "'", '"', "0", "1", "9", "00", "01",
    ".", "e", "E", "+", "-", "x", "0x", "1F", "Infinity", "NaN", "null", "true", "false",
    "/", "*", "//", "/*", "*/", "\\0", "\\01", "\\u", "\\uD83D\\uDE00", "\\uDC00",
    "12345678901234567890", "9007199254740993", "1e400", ".5", "5.", "1e-7", "0.1",
]


def random_json5(rng: random.Random, depth: int = 0) -> str:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice(["0", "-0", "+1", ".5", "5.", "1e3", "-2E-2", "0x1f", "-0XAB",
                           "12345678901234567890", "Infinity", "-NaN", "1.0", "0.1", "1e21"])
    if kind == 1:
        quote = rng.choice(["'", '"'])
        body = "".join(rng.choice(["a", " ", "\\n", "\\u00e9", "\\x41", "\\'", '\\"',
                                   "\\\n", "\\0", "\u00e4", "\\uD83D\\uDE00", "\\q"])
                       for _ in range(rng.randrange(4)))
        return quote + body + quote
    if kind == 2:
        return rng.choice(["null", "true", "false"])
    if kind in (3, 4, 5):
        return rng.choice(["1", "'s'", "[]", "{}"])
    if kind in (6, 7):
        keys = ["a", "$b", "_c", "\\u0061d", "'e f'", '"g"', "\u00e4", "\u03c0\u0301", "'1'",
                "'0'", "'01'", "__proto__"]
        members = [f"{rng.choice(keys)}:{random_json5(rng, depth + 1)}"
                   for _ in range(rng.randrange(4))]
        return "{" + ",".join(members) + rng.choice(["", ",", " // c\n", "/* c */"]) + "}"
    items = [random_json5(rng, depth + 1) for _ in range(rng.randrange(4))]
    return "[" + ", ".join(items) + rng.choice(["", ","]) + "]"


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randrange(3)):
        at = rng.randrange(len(text) + 1)
        action = rng.randrange(3)
        if action == 0:
            text = text[:at] + rng.choice(JSON5_PIECES) + text[at:]
        elif action == 1:
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + rng.choice(JSON5_PIECES) + text[at + 1 :]
    return text


def node_view(value: Any) -> Any:
    """What JSON.stringify writes for a value: NaN and Infinity become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: node_view(item) for key, item in value.items()}
    if isinstance(value, list):
        return [node_view(item) for item in value]
    return value


async def test_json5_agrees_with_the_reference(tmp_path: Path) -> None:
    rng = random.Random(20300101)
    texts = [random_json5(rng) for _ in range(1500)]
    texts += [mutate(rng, rng.choice(texts)) for _ in range(4500)]
    module = reference.NODE_MODULES / "json5" / "lib" / "index.js"
    results = await run_node(
        tmp_path, JSON5_WITH_REFERENCE % {"module": json.dumps(str(module))}, texts
    )
    accepted = 0
    for text, ref in zip(texts, results, strict=True):
        try:
            ours = json5.loads(text)
        except json5.JSON5Error as error:
            assert ref is None, f"{text!r}: gw rejects ({error}), the reference reads {ref}"
            continue
        assert ref is not None, f"{text!r}: gw reads {ours!r}, the reference rejects it"
        assert json.dumps(node_view(ours)) == json.dumps(json.loads(ref)), text
        accepted += 1
    assert 1500 <= accepted <= len(texts) - 1500  # both verdicts are well represented


IDENTIFIER_CLASSES = """\
import u from %(module)s;
const start = [], cont = [];
for (let cp = 0; cp <= 0x10ffff; cp++) {
  const ch = String.fromCodePoint(cp);
  const isStart = (ch >= "a" && ch <= "z") || (ch >= "A" && ch <= "Z") || ch === "$"
    || ch === "_" || u.ID_Start.test(ch);
  if (isStart) start.push(cp);
  else if ((ch >= "0" && ch <= "9") || ch === "\\u200c" || ch === "\\u200d"
           || u.ID_Continue.test(ch)) cont.push(cp);
}
console.log(JSON.stringify({ start, cont }));
"""


async def test_unquoted_key_characters_are_the_references(tmp_path: Path) -> None:
    module = reference.NODE_MODULES / "json5" / "lib" / "unicode.js"
    classes = await run_node(
        tmp_path, IDENTIFIER_CLASSES % {"module": json.dumps(str(module))}, None
    )
    start, cont = set(classes["start"]), set(classes["cont"])
    everything = range(0x110000)
    assert {p for p in everything if json5.is_id_start(chr(p))} == start
    assert {p for p in everything if json5.is_id_continue(chr(p))} == start | cont
