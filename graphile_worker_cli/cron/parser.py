"""The crontab file format, exactly as the reference reads it, plus gw's ``tz`` and ``dst``.

A line is ``minute hour day month weekday task ?options {payload}``; ``#`` lines and blank
lines are skipped. Every error is a ``CrontabError`` that starts with ``source:line:`` and
says which part was wrong and what was expected.

The reference's patterns are JavaScript regular expressions, which differ from Python's in
ways that decide what a line means: ``$`` is the end of the text (Python's also matches
before a final newline, so ``?id=foo%0A`` would pass), ``.`` stops at \\r, U+2028 and U+2029
as well as \\n, ``\\s`` and ``trim()`` know U+FEFF (a byte order mark) but not U+001C-U+001F
or U+0085. The patterns below spell those rules out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from graphile_worker_cli.cron import json5, types
from graphile_worker_cli.cron.matcher import FIELD_CHARS, FIELDS, CrontabTimer, FieldError
from graphile_worker_cli.cron.types import Crontab, CrontabFill
from graphile_worker_cli.errors import CrontabError

JS_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
"""What JavaScript's ``\\s`` and ``trim()`` treat as white space."""
_S = f"[{JS_SPACE}]"
_NOT_S = f"[^{JS_SPACE}]"
_DOT = "[^\n\r\u2028\u2029]"  # JavaScript's ``.``
_LINE_BREAKS = "\n\r\u2028\u2029"

_LINE = re.compile(f"({FIELD_CHARS}){_S}+" * 5 + f"({_DOT}*)\\Z")
_COMMAND = re.compile(
    f"([_a-zA-Z][_a-zA-Z0-9:/_-]*)(?:{_S}+\\?({_NOT_S}+))?(?:{_S}+(\\{{{_DOT}*\\}}))?\\Z"
)
_TASK = re.compile(r"[_a-zA-Z][_a-zA-Z0-9:/_-]*\Z")
_INTEGER = re.compile(r"-?[0-9]+\Z")
_ONE_LINE = re.compile(f"{_DOT}*\\Z")
OPTION_KEYS = ("id", "fill", "max", "queue", "priority", "jobKey", "jobKeyMode", "tz", "dst")
MAX_OPTION_PAIRS = 1000  # Node's querystring reads this many &-separated pairs, no more


def js_trim(text: str) -> str:
    """``text.trim()`` as JavaScript does it."""
    return text.strip(JS_SPACE)


def parse_crontab(text: str, *, source: str = "<crontab>") -> list[Crontab]:
    """Parse a whole crontab; ids must be unique across it."""
    items: list[Crontab] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(re.split(r"\r?\n", text), start=1):
        line = js_trim(raw)
        if not line or line.startswith("#"):
            continue
        item = parse_crontab_line(line, line_number=number, source=source)
        if item.identifier in first_line:
            raise CrontabError(
                f"{source}:{number}: duplicate id {item.identifier!r} (first used on line "
                f"{first_line[item.identifier]}); expected a unique ?id=... for each item"
            )
        first_line[item.identifier] = number
        items.append(item)
    return items


def parse_crontab_file(path: Path | str) -> list[Crontab]:
    """Read and parse a crontab file; a missing or unreadable file is a CrontabError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CrontabError(f"crontab file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CrontabError(f"cannot read crontab file {str(path)!r}: {error}") from None
    return parse_crontab(text, source=str(path))


def parse_crontab_line(line: str, *, line_number: int = 1, source: str = "<crontab>") -> Crontab:
    """Parse one (non-comment, non-blank) crontab line."""
    where = f"{source}:{line_number}"
    line = js_trim(line)
    match = _LINE.match(line)
    if match is None:
        raise CrontabError(f"{where}: {_diagnose_line(line)}")
    fields = [match.group(i) for i in range(1, 6)]
    try:
        timer = CrontabTimer.parse(fields)
    except FieldError as error:
        raise CrontabError(f"{where}: {error.message}") from None
    command = match.group(6)
    command_match = _COMMAND.match(command)
    if command_match is None:
        raise CrontabError(f"{where}: {_diagnose_command(command)}")
    task, options_text, payload_text = command_match.groups()
    try:
        types.check_task(task)
    except CrontabError as error:
        raise CrontabError(f"{where}: {error.message}") from None
    options = _parse_options(options_text, where)
    payload = _parse_payload(payload_text, where)
    identifier = options.pop("identifier", task)
    return Crontab(
        timer=timer,
        task_identifier=task,
        identifier=identifier,
        pattern=" ".join(fields),
        payload=payload,
        **options,
    )


def _split_js(text: str) -> list[str]:
    return [token for token in re.split(f"{_S}+", text) if token]


def _diagnose_line(line: str) -> str:
    if any(char in line for char in _LINE_BREAKS):
        return (
            "the line contains a line break character (\\r, U+2028 or U+2029); expected one "
            "line (write it as an escape such as \\u2028 inside a payload string)"
        )
    tokens = _split_js(line)
    if len(tokens) < 6:
        return (
            f"expected 5 time fields (minute hour day month weekday) and a task identifier, "
            f"found {len(tokens)} part{'s' if len(tokens) != 1 else ''}"
        )
    for spec, token in zip(FIELDS, tokens[:5], strict=True):
        if not re.fullmatch(FIELD_CHARS, token):
            return (
                f"{spec.name} field {token!r} is not valid; expected a number, a range a-b, "
                "* or */n (or a comma list of those)"
            )
    return "expected 5 time fields (minute hour day month weekday) and a task identifier"


def _diagnose_command(command: str) -> str:
    tokens = _split_js(command)
    task = tokens[0] if tokens else command
    if not _TASK.match(task):
        return (
            f"task identifier {task!r} is not valid; expected a letter or _ followed by "
            "letters, digits, _, -, : or /"
        )
    rest = js_trim(command[command.index(task) + len(task) :])
    if "{" in rest and not rest.endswith("}"):
        return f"payload {rest[rest.index('{'):]!r} is not valid; expected a {{JSON object}}"
    return (
        f"cannot read {rest!r} after the task identifier; expected ?options (no spaces) "
        "and/or a {JSON object} payload"
    )


_Setter = Callable[[str], tuple[str, Any]]


def _job_key(value: str) -> str:
    if not _ONE_LINE.match(value):
        raise CrontabError(
            f"invalid jobKey {value!r}: expected 1 to {types.MAX_KEY_LENGTH} characters "
            "on one line (no \\n, \\r, U+2028 or U+2029)"
        )
    return types.check_job_key(value)


_OPTION_PARSERS: dict[str, _Setter] = {
    "id": lambda v: ("identifier", types.check_id(v)),
    "fill": lambda v: ("fill", CrontabFill.parse(v)),
    "max": lambda v: ("max_attempts", types.check_max_attempts(_integer(v, "max"))),
    "queue": lambda v: ("queue_name", types.check_queue(v)),
    "priority": lambda v: ("priority", types.check_priority(_integer(v, "priority"))),
    "jobKey": lambda v: ("job_key", _job_key(v)),
    "jobKeyMode": lambda v: ("job_key_mode", types.check_job_key_mode(v)),
    "tz": lambda v: ("tz", types.check_tz(v)),
    "dst": lambda v: ("dst", types.check_dst(v)),
}


def _integer(value: str, name: str) -> int:
    # Beyond 6 significant digits it is far outside a smallint: no need to convert it.
    if not _INTEGER.match(value) or len(value.lstrip("-").lstrip("0")) > 6:
        expected = "a whole number from 1 to 32767" if name == "max" else (
            "a whole number from -32768 to 32767"
        )
        raise CrontabError(f"invalid {name} {value!r}: expected {expected}")
    return int(value)


def _query_pairs(text: str) -> list[tuple[str, str]]:
    """``querystring.parse`` as Node does it: at most 1000 pairs, ``+`` is a space."""
    kept = "&".join(text.split("&")[:MAX_OPTION_PAIRS])
    return parse_qsl(kept, keep_blank_values=True)


def _parse_options(text: str | None, where: str) -> dict[str, Any]:
    if text is None:
        return {}
    result: dict[str, Any] = {}
    seen: set[str] = set()
    for key, value in _query_pairs(text):
        parser = _OPTION_PARSERS.get(key)
        if parser is None:
            raise CrontabError(
                f"{where}: unsupported option {key!r}; expected one of "
                + ", ".join(OPTION_KEYS)
            )
        if key in seen:
            raise CrontabError(f"{where}: option {key!r} is given more than once")
        seen.add(key)
        try:
            name, parsed = parser(value)
        except CrontabError as error:
            raise CrontabError(f"{where}: option {key}: {error.message}") from None
        result[name] = parsed
    if "job_key" in result and "job_key_mode" not in result:
        result["job_key_mode"] = types.CronJobKeyMode.REPLACE
    if "dst" in result and "tz" not in result:
        raise CrontabError(f"{where}: option dst needs tz (a time zone to apply it in)")
    return result


def _parse_payload(text: str | None, where: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json5.loads(text)
    except json5.JSON5DepthError as error:
        raise CrontabError(f"{where}: payload {error}") from None
    except json5.JSON5Error as error:
        raise CrontabError(f"{where}: payload is not valid JSON5: {error}") from None
    if not isinstance(value, dict):
        raise CrontabError(f"{where}: payload must be a JSON object")
    if _has_non_finite(value):
        raise CrontabError(f"{where}: payload numbers must be finite (no Infinity or NaN)")
    return value


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def check_unique_ids(crontabs: Sequence[Crontab]) -> None:
    """Crontab items from several sources must still have distinct ids."""
    seen: set[str] = set()
    for item in crontabs:
        if item.identifier in seen:
            raise CrontabError(
                f"duplicate cron id {item.identifier!r}; expected a unique id for each item "
                "(use ?id=... or Cron.id(...))"
            )
        seen.add(item.identifier)
