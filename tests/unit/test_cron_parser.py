"""The crontab format: every field form, every option, every error with its message."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from graphile_worker_cli.cron import (
    CronJobKeyMode,
    Crontab,
    CrontabError,
    CrontabFill,
    CrontabTimer,
    DstRule,
    json5,
    parse_crontab,
    parse_crontab_file,
)


def one(line: str) -> Crontab:
    [item] = parse_crontab(line, source="crontab")
    return item


def timer(fields: str) -> CrontabTimer:
    return CrontabTimer.parse(fields.split())


def error_of(text: str) -> str:
    with pytest.raises(CrontabError) as info:
        parse_crontab(text, source="crontab")
    return info.value.message


# -- time fields ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("*", tuple(range(60))),
        ("*/15", (0, 15, 30, 45)),
        ("*/7", (0, 7, 14, 21, 28, 35, 42, 49, 56)),
        ("5", (5,)),
        ("10-13", (10, 11, 12, 13)),
        ("1,2,30-31,*/20", (0, 1, 2, 20, 30, 31, 40)),
        ("59,0", (0, 59)),
    ],
)
def test_minute_field_forms(field: str, expected: tuple[int, ...]) -> None:
    assert timer(f"{field} * * * *").minutes == expected


def test_field_ranges_and_sunday_seven() -> None:
    t = timer("0 0-23 1-31 1-12 0-6")
    assert t.hours == tuple(range(24))
    assert (t.days, t.months) == (tuple(range(1, 32)), tuple(range(1, 13)))
    assert timer("* * * * 7").dows == (0,)
    assert timer("* * * * 5-7").dows == (0, 5, 6)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("60 * * * * t", "crontab:1: minute field '60': value 60 is out of range; expected 0-59"),
        ("* 24 * * * t", "crontab:1: hour field '24': value 24 is out of range; expected 0-23"),
        ("* * 0 * * t",
         "crontab:1: day of month field '0': value 0 is out of range; expected 1-31"),
        ("* * 32 * * t",
         "crontab:1: day of month field '32': value 32 is out of range; expected 1-31"),
        ("* * * 13 * t", "crontab:1: month field '13': value 13 is out of range; expected 1-12"),
        ("* * * 0 * t", "crontab:1: month field '0': value 0 is out of range; expected 1-12"),
        ("* * * * 8 t", "crontab:1: day of week field '8': value 8 is out of range; expected 0-6"),
        ("*/0 * * * * t", "crontab:1: minute field '*/0': step in '*/0' must be at least 1"),
        ("5-5 * * * * t",
         "crontab:1: minute field '5-5': range '5-5' must go from a smaller to a larger number"),
        ("1-5/2 * * * * t",
         "crontab:1: minute field '1-5/2': '1-5/2' is not valid; expected a number, a range a-b, "
         "* or */n (or a comma list of those)"),
        ("* 1,,2 * * * t",
         "crontab:1: hour field '1,,2': '' is not valid; expected a number, a range a-b, "
         "* or */n (or a comma list of those)"),
        ("MON * * * * t",
         "crontab:1: minute field 'MON' is not valid; expected a number, a range a-b, "
         "* or */n (or a comma list of those)"),
        ("* * * * t",
         "crontab:1: expected 5 time fields (minute hour day month weekday) and a task "
         "identifier, found 5 parts"),
    ],
)
def test_field_errors(line: str, message: str) -> None:
    assert error_of(line) == message


def test_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    path.write_text("# jobs\n\n0 4 * * * ok\n0 4 * * * bad ?max=x\n")
    with pytest.raises(CrontabError) as info:
        parse_crontab_file(path)
    assert info.value.message == (
        f"{path}:4: option max: invalid max 'x': expected a whole number from 1 to 32767"
    )
    assert info.value.exit_code == 2


def test_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(CrontabError, match=r"crontab file '.*nope' not found"):
        parse_crontab_file(tmp_path / "nope")


# -- matching ------------------------------------------------------------------------------


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_day_of_week_zero_is_sunday() -> None:
    sunday = utc(2030, 1, 6, 9, 0)
    t = timer("0 9 * * 0")
    assert t.matches(sunday)
    assert not t.matches(sunday + timedelta(days=1))
    assert timer("0 9 * * 7").matches(sunday)
    assert timer("0 9 * * 1-5").matches(sunday + timedelta(days=1))
    assert not timer("0 9 * * 1-5").matches(sunday)


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    t = timer("0 0 13 * 5")  # the 13th, or any Friday
    assert t.matches(utc(2030, 2, 13, 0, 0))  # a Wednesday
    assert t.matches(utc(2030, 2, 1, 0, 0))  # a Friday
    assert not t.matches(utc(2030, 2, 2, 0, 0))
    only_day = timer("0 0 13 * *")
    assert not only_day.matches(utc(2030, 2, 1, 0, 0))


def test_matching_is_utc_whatever_the_process_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert time.localtime(0).tm_hour == 9  # the process really is in Tokyo
        t = timer("30 23 * * 0")
        assert t.matches(utc(2030, 1, 6, 23, 30))  # Sunday 23:30 UTC (Monday in Tokyo)
        assert not t.matches(utc(2030, 1, 6, 14, 30))  # Sunday 23:30 in Tokyo
        [item] = parse_crontab("30 23 * * 0 t")
        assert item.next_runs(utc(2030, 1, 1), 1) == [utc(2030, 1, 6, 23, 30)]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_tz_option_matches_local_time_across_dst() -> None:
    [item] = parse_crontab("0 9 * * * t ?tz=Europe/Paris")
    assert item.tz == ZoneInfo("Europe/Paris")
    assert item.matches(utc(2030, 1, 15, 8, 0))  # winter: UTC+1
    assert item.matches(utc(2030, 7, 15, 7, 0))  # summer: UTC+2
    assert not item.matches(utc(2030, 7, 15, 9, 0))
    runs = item.next_runs(utc(2030, 3, 30, 12, 0), 2)  # DST starts 2030-03-31
    assert runs == [utc(2030, 3, 31, 7, 0), utc(2030, 4, 1, 7, 0)]


def test_next_runs() -> None:
    [item] = parse_crontab("*/20 9 * * 1 t")
    assert item.next_runs(utc(2030, 1, 6, 12, 0), 5) == [
        utc(2030, 1, 7, 9, 0), utc(2030, 1, 7, 9, 20), utc(2030, 1, 7, 9, 40),
        utc(2030, 1, 14, 9, 0), utc(2030, 1, 14, 9, 20),
    ]
    [leap] = parse_crontab("0 0 29 2 * t")
    assert leap.next_runs(utc(2030, 1, 1), 1) == [utc(2032, 2, 29, 0, 0)]


# -- the command: task, options, payload ----------------------------------------------------


def test_plain_line_defaults() -> None:
    [item] = parse_crontab("  0 4 * * *   tasks/cleanup:all  ")
    assert item.task_identifier == item.identifier == "tasks/cleanup:all"
    assert item.pattern == "0 4 * * *"
    assert item.fill == CrontabFill()
    assert (item.max_attempts, item.queue_name, item.priority, item.job_key) == (None,) * 4
    assert (item.job_key_mode, item.payload, item.tz) == (None, None, None)


def test_every_option() -> None:
    [item] = parse_crontab(
        "0 4 * * * send ?id=nightly-send_1&fill=1w2d3h4m5s&max=5&queue=mail:eu&priority=-3"
        "&jobKey=send+nightly%21&jobKeyMode=preserve_run_at&tz=America/New_York"
    )
    assert item.identifier == "nightly-send_1"
    assert item.fill.duration == timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)
    assert str(item.fill) == "1w2d3h4m5s"
    assert (item.max_attempts, item.queue_name, item.priority) == (5, "mail:eu", -3)
    assert item.job_key == "send nightly!"
    assert item.job_key_mode is CronJobKeyMode.PRESERVE_RUN_AT
    assert item.tz == ZoneInfo("America/New_York")


def test_job_key_defaults_to_replace_mode() -> None:
    [item] = parse_crontab("* * * * * t ?jobKey=k")
    assert item.job_key_mode is CronJobKeyMode.REPLACE


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("nope=1", "unsupported option 'nope'; expected one of id, fill, max, queue, priority, "
         "jobKey, jobKeyMode, tz, dst"),
        ("max=1&max=2", "option 'max' is given more than once"),
        ("id=9lives", "option id: invalid id '9lives': expected a letter or _ then letters, "
         "digits, - or _"),
        ("id=", "option id: invalid id '': expected a letter or _ then letters, digits, - or _"),
        ("fill=1y", "option fill: invalid fill '1y': expected a period like 1h, 30m or "
         "4w3d2h1m30s (units s, m, h, d, w)"),
        ("fill", "option fill: invalid fill '': expected a period like 1h, 30m or "
         "4w3d2h1m30s (units s, m, h, d, w)"),
        ("max=0", "option max: invalid max 0: expected a whole number from 1 to 32767"),
        ("max=40000", "option max: invalid max 40000: expected a whole number from 1 to 32767"),
        ("max=-1", "option max: invalid max -1: expected a whole number from 1 to 32767"),
        ("queue=a/b", "option queue: invalid queue 'a/b': expected up to 128 letters, digits, "
         "-, _ or :"),
        ("priority=1.5", "option priority: invalid priority '1.5': expected a whole number from "
         "-32768 to 32767"),
        ("priority=99999", "option priority: invalid priority 99999: expected a whole number "
         "from -32768 to 32767"),
        ("jobKey=", "option jobKey: invalid jobKey '': expected 1 to 512 characters"),
        ("jobKeyMode=unsafe_dedupe", "option jobKeyMode: invalid jobKeyMode 'unsafe_dedupe': "
         "expected replace or preserve_run_at"),
        ("tz=Nowhere/City", "option tz: invalid tz 'Nowhere/City': expected an IANA time zone "
         "name like Europe/Paris or UTC"),
        ("dst=once", "option dst needs tz (a time zone to apply it in)"),
        ("tz=UTC&dst=never", "option dst: invalid dst 'never': expected wall or once"),
        ("fill=366d1s", "option fill: invalid fill '366d1s': expected at most 366d (52w2d)"),
        ("fill=99999999999999w",
         "option fill: invalid fill '99999999999999w': expected at most 366d (52w2d)"),
        ("fill=100000000d",
         "option fill: invalid fill '100000000d': expected at most 366d (52w2d)"),
        ("max=" + "9" * 5000, "option max: invalid max '" + "9" * 5000 + "': expected a whole "
         "number from 1 to 32767"),
    ],
)
def test_option_errors(options: str, message: str) -> None:
    assert error_of(f"* * * * * t ?{options}") == f"crontab:1: {message}"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("9task", "task identifier '9task' is not valid; expected a letter or _ followed by "
         "letters, digits, _, -, : or /"),
        ("t junk", "cannot read 'junk' after the task identifier; expected ?options (no "
         "spaces) and/or a {JSON object} payload"),
        ("t ?id=a b", "cannot read '?id=a b' after the task identifier; expected ?options (no "
         "spaces) and/or a {JSON object} payload"),
        ("t {a: 1", "payload '{a: 1' is not valid; expected a {JSON object}"),
        ("t {a: }", "payload is not valid JSON5: invalid character '}' at character 5"),
        ("t {'a': 1} {}", "payload is not valid JSON5: invalid character '{' at character 10"),
        ("t {a: 01}", "payload is not valid JSON5: invalid character '1' at character 6"),
        ("t {a: [" + "[" * 3000 + "]" * 3000 + "]}", "payload is nested deeper than 128 levels "
         "(at character 132); expected at most 128"),
        ("t" * 129, f"invalid task identifier '{'t' * 129}': expected 1 to 128 characters"),
        ("t {a: NaN}", "payload numbers must be finite (no Infinity or NaN)"),
    ],
)
def test_command_errors(command: str, message: str) -> None:
    assert error_of(f"* * * * * {command}") == f"crontab:1: {message}"


def test_duplicate_ids_are_errors() -> None:
    text = "* * * * * a\n# same task, distinct id: fine\n* * * * * a ?id=a2\n\n0 * * * * a\n"
    assert error_of(text) == (
        "crontab:5: duplicate id 'a' (first used on line 1); expected a unique ?id=... for each "
        "item"
    )
    assert error_of("* * * * * a ?id=x\n* * * * * b ?id=x") == (
        "crontab:2: duplicate id 'x' (first used on line 1); expected a unique ?id=... for each "
        "item"
    )


def test_comments_blank_lines_and_crlf() -> None:
    text = "# header\r\n\r\n   # indented comment\r\n0 1 * * * first\r\n\t\r\n2 3 * * * second\r\n"
    items = parse_crontab(text)
    assert [i.task_identifier for i in items] == ["first", "second"]
    assert parse_crontab("") == []
    assert parse_crontab("# only a comment\n") == []


def test_json5_payload() -> None:
    [item] = parse_crontab(
        "* * * * * t ?id=x {unquoted: 'single', \"double\": \"q\\\"\", trailing: [1, 2,], "
        "hex: 0x1F, half: .5, plus: +3, neg: -2e2, /* comment */ nested: {n: null, b: true},}"
    )
    assert item.payload == {
        "unquoted": "single", "double": 'q"', "trailing": [1, 2], "hex": 31, "half": 0.5,
        "plus": 3, "neg": -200.0, "nested": {"n": None, "b": True},
    }
    [strict] = parse_crontab('* * * * * t {"a": [1, {"b": "c"}], "d": false}')
    assert strict.payload == {"a": [1, {"b": "c"}], "d": False}


def test_json5_reader_details() -> None:
    assert json5.loads("{a: 'x\\ty\\u0041\\x42'}") == {"a": "x\tyAB"}
    assert json5.loads("// c\n[1, // two\n 2]") == [1, 2]
    with pytest.raises(json5.JSON5Error, match="unexpected end of input at character 8"):
        json5.loads("{a: 'x}")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("{\\u0061: 1, a\\u0062: 2, $\\u200c: 3, _: 4}", {"a": 1, "ab": 2, "$\u200c": 3, "_": 4}),
        ("{\u00e4\u0301: 1, \u03c0: 2}", {"\u00e4\u0301": 1, "\u03c0": 2}),
        ("{a: 12345678901234567890}", {"a": 12345678901234567000}),  # a double, as in Node
        ("{a: 9007199254740993}", {"a": 9007199254740992}),
        ("{a: 0x20000000000001}", {"a": 9007199254740992}),
        ("{a: 1.0, b: -0, c: 1e3, d: 2.5, e: 1e21, f: -.5e-1}",
         {"a": 1, "b": 0, "c": 1000, "d": 2.5, "e": 1e21, "f": -0.05}),
        ("{a: '\\uD83D\\uDE00', b: '\\uD800'}", {"a": "\U0001f600", "b": "\ud800"}),
        ("{a:\u3000\u20281,\u00a0}", {"a": 1}),
        ("{a: 1 // to the end of the line\u2028}", {"a": 1}),
        ("{a: 'raw\u2028separator'}", {"a": "raw\u2028separator"}),
        ("{a: 'line \\\ncontinued'}", {"a": "line continued"}),
        ("{a: [" + "[" * 126 + "]" * 126 + "]}", {"a": json5.loads("[" * 127 + "]" * 127)}),
    ],
)
def test_json5_values_are_the_references(text: str, value: object) -> None:
    parsed = json5.loads(text)
    assert parsed == value
    assert json.dumps(parsed) == json.dumps(value)  # ints stay ints, key order as given


def test_json5_keys_that_are_array_indexes_come_first() -> None:
    parsed = json5.loads("{b: 1, '2': 2, '1': 3, '01': 4, '4294967295': 5, '4294967294': 6}")
    assert list(parsed) == ["1", "2", "4294967294", "b", "01", "4294967295"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{a: 01}", "invalid character '1' at character 6"),
        ("{a: 00}", "invalid character '0' at character 6"),
        ("{a: -01.5}", "invalid character '1' at character 7"),
        ("{a: .}", "invalid character '}' at character 6"),
        ("{a: 1e}", "invalid character '}' at character 7"),
        ("{a: 0x}", "invalid character '}' at character 7"),
        ("{a: - 1}", "invalid character ' ' at character 6"),
        ("{a: '\\01'}", "invalid character '1' at character 8"),
        ("{a: '\\8'}", "invalid character '8' at character 7"),
        ("{a: '\\x4'}", "invalid character '\\'' at character 9"),
        ("{\\u0031: 1}", "invalid identifier character at character 2"),
        ("{a\\u002d: 1}", "invalid identifier character at character 3"),
        ("{\\x61: 1}", "invalid character 'x' at character 3"),
        ("{\u2118: 1}", "invalid character '\u2118' at character 2"),  # Unicode 10: no letter
        ("{\u0560: 1}", "invalid character '\u0560' at character 2"),  # added in Unicode 11
        ("{a: nul}", "invalid character '}' at character 8"),
        ("{a: truex}", "invalid character 'x' at character 9"),
        ("{a: 1 /}", "invalid character '}' at character 8"),
        ("{a: 1 /* never closed}", "unterminated comment at character 23"),
        ("{,}", "invalid character ',' at character 2"),
        ("{a: [1,,]}", "invalid character ',' at character 8"),
        ("{a: 'x\ny'}", "invalid character '\\n' at character 7"),
        ("{a: 1}\x85", "invalid character '\\x85' at character 7"),
    ],
)
def test_json5_rejects_what_the_reference_rejects(text: str, error: str) -> None:
    with pytest.raises(json5.JSON5Error) as info:
        json5.loads(text)
    assert str(info.value) == error


def test_fill_phrases() -> None:
    assert CrontabFill.parse("90s").duration == timedelta(seconds=90)
    assert CrontabFill.parse("1h30m").duration == timedelta(minutes=90)
    assert CrontabFill.parse("2m1m").duration == timedelta(minutes=3)
    assert CrontabFill.hours(2) == CrontabFill.parse("2h")
    for bad in ("", "1", "h", "1H", "1h 2m", "-1h"):
        with pytest.raises(CrontabError, match="invalid fill"):
            CrontabFill.parse(bad)


def test_tz_wall_clock_across_dst_changes() -> None:
    # Europe/Paris: 2030-03-31 02:00 -> 03:00 (02:30 never happens),
    # 2030-10-27 03:00 -> 02:00 (02:30 happens twice).
    [item] = parse_crontab("30 2 * * * t ?tz=Europe/Paris")
    spring = item.next_runs(utc(2030, 3, 30, 12, 0), 2)
    assert spring == [utc(2030, 4, 1, 0, 30), utc(2030, 4, 2, 0, 30)]
    autumn = item.next_runs(utc(2030, 10, 26, 12, 0), 3)
    assert autumn == [utc(2030, 10, 27, 0, 30), utc(2030, 10, 27, 1, 30), utc(2030, 10, 28, 1, 30)]


# -- the reference's JavaScript patterns, and the edges where Python's differ ---------------


@pytest.mark.parametrize(
    "options",
    ["id=foo%0A", "fill=1h%0A", "queue=q%0A", "max=3%0A", "priority=3%0A", "jobKey=a%0Ab",
     "jobKey=a%0D", "jobKey=a%E2%80%A8", "jobKey=k%0A", "jobKeyMode=replace%0A", "tz=UTC%0A",
     "dst=once%0A&tz=UTC"],
)
def test_option_values_with_an_encoded_line_break_are_rejected(options: str) -> None:
    # Python's $ also matches before a final newline; the reference's (JavaScript) does not.
    message = error_of(f"* * * * * t ?{options}")
    assert message.startswith("crontab:1: option "), message
    assert "\n" not in message


def test_a_byte_order_mark_is_white_space(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    path.write_bytes(b"\xef\xbb\xbf0 4 * * * first\n# c\n")
    assert [item.task_identifier for item in parse_crontab_file(path)] == ["first"]
    path.write_bytes(b"\xef\xbb\xbf# a comment first\n0 4 * * * second\n")
    assert [item.task_identifier for item in parse_crontab_file(path)] == ["second"]
    assert one("0 4 * * *\ufeffthird\u3000").task_identifier == "third"


@pytest.mark.parametrize("char", ["\x1c", "\x1f", "\x85"])
def test_white_space_is_javascript_white_space(char: str) -> None:
    # str.split() and \s in Python take these for spaces; JavaScript does not.
    assert error_of(f"* * * * *{char}t").startswith("crontab:1: expected 5 time fields")
    assert error_of(f"* * * * * {char}").startswith("crontab:1: task identifier")
    assert error_of(f"{char}* * * * * t").startswith("crontab:1: ")


@pytest.mark.parametrize("char", ["\r", "\u2028", "\u2029"])
def test_line_breaks_inside_a_line_are_rejected(char: str) -> None:
    message = error_of(f"* * * * * t {{a: 'x{char}y'}}")
    assert message == (
        "crontab:1: the line contains a line break character (\\r, U+2028 or U+2029); expected "
        "one line (write it as an escape such as \\u2028 inside a payload string)"
    )
    assert one("* * * * * t {a: 'x\\u2028y'}").payload == {"a": "x\u2028y"}  # escaped: fine


def test_numbers_with_many_digits() -> None:
    assert one("0" * 5000 + "5 * * * * t").timer.minutes == (5,)
    assert one("*/" + "0" * 4000 + "7 * * * * t").timer.minutes == tuple(range(0, 60, 7))
    assert error_of("1-" + "9" * 5000 + " * * * * t").startswith(
        "crontab:1: minute field '1-999"
    )
    assert one("* * * * * t ?priority=-0000000000000001&max=00000000000000000009").priority == -1
    assert one("* * * * * t ?fill=" + "0" * 5000 + "1h").fill == CrontabFill.hours(1)
    assert error_of("* * * * * t ?fill=" + "9" * 5000 + "s").endswith(
        "expected at most 366d (52w2d)"
    )


def test_option_pairs_beyond_the_thousandth_are_ignored() -> None:
    # Node's querystring reads 1000 &-separated pairs and drops the rest.
    assert one("* * * * * t ?" + "&" * 999 + "id=kept").identifier == "kept"
    assert one("* * * * * t ?" + "&" * 1000 + "id=dropped").identifier == "t"


def test_task_identifier_of_128_characters_is_the_longest() -> None:
    assert one("* * * * * " + "t" * 128).task_identifier == "t" * 128


def test_fill_bound() -> None:
    assert CrontabFill.parse("366d") == CrontabFill.parse("52w2d") == CrontabFill.days(366)
    with pytest.raises(CrontabError, match=r"invalid fill 367: expected at most 366d"):
        CrontabFill.days(367)
    with pytest.raises(CrontabError, match=r"expected a period from 0s to 366d \(52w2d\)"):
        CrontabFill(timedelta(days=10**8))


@pytest.mark.parametrize(
    "zone", ["localtime", "Factory", "posixrules", "right/UTC", "posix/Europe/Paris",
             "europe/paris", "Europe/Paris ", "../zoneinfo/UTC", ""],
)
def test_tz_accepts_iana_zone_names_only(zone: str) -> None:
    assert error_of(f"* * * * * t ?tz={quote(zone)}") == (
        f"crontab:1: option tz: invalid tz {zone!r}: expected an IANA time zone name like "
        "Europe/Paris or UTC"
    )


def test_tz_legacy_iana_links_are_zones_too() -> None:
    for zone in ("UTC", "Etc/UTC", "US/Eastern", "Asia/Calcutta", "EST5EDT"):
        assert one(f"* * * * * t ?tz={zone}").tz == ZoneInfo(zone)


# -- the dst rule ----------------------------------------------------------------------------
# America/New_York: 2030-03-10 02:00 EST -> 03:00 EDT (02:00-02:59 never happen);
# 2030-11-03 02:00 EDT -> 01:00 EST (01:00-01:59 happen twice).


def test_dst_wall_skips_the_missing_time_and_repeats_the_repeated_one() -> None:
    item = one("30 2 * * * t ?tz=America/New_York")
    assert item.dst is DstRule.WALL
    assert item.next_runs(utc(2030, 3, 9, 12), 2) == [utc(2030, 3, 11, 6, 30),
                                                      utc(2030, 3, 12, 6, 30)]
    twice = one("30 1 * * * t ?tz=America/New_York&dst=wall")
    assert twice.next_runs(utc(2030, 11, 2, 12), 3) == [
        utc(2030, 11, 3, 5, 30), utc(2030, 11, 3, 6, 30), utc(2030, 11, 4, 6, 30),
    ]


def test_dst_once_runs_a_missing_time_at_the_change_and_a_repeated_one_once() -> None:
    item = one("30 2 * * * t ?tz=America/New_York&dst=once")
    assert item.dst is DstRule.ONCE
    assert item.options_text() == "tz=America/New_York&dst=once"
    # 03:00 EDT (07:00 UTC) is the first minute after the change: 02:30 runs then.
    assert item.next_runs(utc(2030, 3, 9, 12), 2) == [utc(2030, 3, 10, 7, 0),
                                                      utc(2030, 3, 11, 6, 30)]
    assert item.matches(utc(2030, 3, 10, 7, 0))
    assert not item.matches(utc(2030, 3, 10, 7, 1))
    once = one("30 1 * * * t ?tz=America/New_York&dst=once")
    assert once.next_runs(utc(2030, 11, 2, 12), 2) == [utc(2030, 11, 3, 5, 30),
                                                        utc(2030, 11, 4, 6, 30)]
    several = one("0,15 2 * * * t ?id=s&tz=America/New_York&dst=once")
    assert several.next_runs(utc(2030, 3, 10, 6, 0), 1) == [utc(2030, 3, 10, 7, 0)]


def test_dst_once_leaves_items_that_run_every_hour_on_the_wall_clock() -> None:
    hourly = one("30 * * * * t ?tz=America/New_York&dst=once")
    runs = hourly.next_runs(utc(2030, 11, 3, 4, 0), 4)
    assert runs == [utc(2030, 11, 3, h, 30) for h in (4, 5, 6, 7)]  # 01:30 EDT and EST
    spring = hourly.next_runs(utc(2030, 3, 10, 6, 0), 2)
    assert spring == [utc(2030, 3, 10, 6, 30), utc(2030, 3, 10, 7, 30)]  # no 02:30


def test_dst_once_across_a_whole_skipped_day() -> None:
    # Pacific/Apia skipped 2011-12-30 entirely (UTC-10 to UTC+14 at midnight).
    item = one("0 12 * * * t ?tz=Pacific/Apia&dst=once")
    [first] = item.next_runs(datetime(2011, 12, 30, 9, 59, tzinfo=UTC), 1)
    assert first == datetime(2011, 12, 30, 10, 0, tzinfo=UTC)  # 2011-12-31 00:00 local
    wall = one("0 12 * * * t ?tz=Pacific/Apia")
    assert wall.next_runs(datetime(2011, 12, 30, 9, 59, tzinfo=UTC), 1) == [
        datetime(2011, 12, 30, 22, 0, tzinfo=UTC)
    ]
