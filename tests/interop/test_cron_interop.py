"""Cron exactly once across a mixed fleet: three gw schedulers and the Node reference.

The reference's clock cannot be mocked, so the overlap comes from backfill: the crontab
item is known with a last execution two hours ago and ``fill=1d``, so every scheduler, gw
and reference alike, wants the same 120 minutes at once. A transaction holds the item's
known_crontabs row until all four are blocked on their first claim, then lets them race.
"""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from graphile_worker_cli import db
from graphile_worker_cli.cron import CrontabError, MockClock, parse_crontab, parse_crontab_file
from graphile_worker_cli.cron.matcher import floor_minute
from graphile_worker_cli.cron.scheduler import format_ts, run_scheduler
from tests.interop import reference

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
import { parseCrontab } from %(module)s;
const lines = JSON.parse(process.argv[2]);
console.log(JSON.stringify(lines.map((line) => {
  try {
    const [item] = parseCrontab(line);
    return { ok: true, match: item.match.parsedCronMatch, task: item.task,
             identifier: item.identifier, options: item.options, payload: item.payload };
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
]
# Accepted by the reference but rejected by gw when read (they fail later there).
GW_STRICTER = ["* * * * * t ?max=0", "* * * * * t ?jobKey=", "* * * * * t ?priority=99999"]


async def test_parser_agrees_with_the_reference(tmp_path: Path) -> None:
    module = reference.NODE_MODULES / "graphile-worker" / "dist" / "crontab.js"
    script = tmp_path / "parse.mjs"
    script.write_text(PARSE_WITH_REFERENCE % {"module": json.dumps(str(module))})
    lines = AGREED_LINES + GW_STRICTER
    proc = await asyncio.create_subprocess_exec(
        "node", str(script), json.dumps(lines),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    results = json.loads(out)
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
        assert item.payload == ref["payload"], line


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
