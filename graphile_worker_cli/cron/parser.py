"""The crontab file format, exactly as the reference reads it, plus gw's ``tz`` option.

A line is ``minute hour day month weekday task ?options {payload}``; ``#`` lines and blank
lines are skipped. Every error is a ``CrontabError`` that starts with ``source:line:`` and
says which part was wrong and what was expected.
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

_LINE = re.compile(r"^" + r"\s+".join([f"({FIELD_CHARS})"] * 5) + r"\s+(.*)$")
_COMMAND = re.compile(r"^([_a-zA-Z][_a-zA-Z0-9:/_-]*)(?:\s+\?(\S+))?(?:\s+(\{.*\}))?$")
_TASK = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9:/_-]*$")
_INTEGER = re.compile(r"^-?[0-9]+$")
OPTION_KEYS = ("id", "fill", "max", "queue", "priority", "jobKey", "jobKeyMode", "tz")


def parse_crontab(text: str, *, source: str = "<crontab>") -> list[Crontab]:
    """Parse a whole crontab; ids must be unique across it."""
    items: list[Crontab] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(re.split(r"\r?\n", text), start=1):
        line = raw.strip()
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
    line = line.strip()
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


def _diagnose_line(line: str) -> str:
    tokens = line.split()
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
    task = command.split()[0]
    if not _TASK.match(task):
        return (
            f"task identifier {task!r} is not valid; expected a letter or _ followed by "
            "letters, digits, _, -, : or /"
        )
    rest = command[len(task) :].strip()
    if "{" in rest and not rest.endswith("}"):
        return f"payload {rest[rest.index('{'):]!r} is not valid; expected a {{JSON object}}"
    return (
        f"cannot read {rest!r} after the task identifier; expected ?options (no spaces) "
        "and/or a {JSON object} payload"
    )


_Setter = Callable[[str], tuple[str, Any]]

_OPTION_PARSERS: dict[str, _Setter] = {
    "id": lambda v: ("identifier", types.check_id(v)),
    "fill": lambda v: ("fill", CrontabFill.parse(v)),
    "max": lambda v: ("max_attempts", types.check_max_attempts(_integer(v, "max"))),
    "queue": lambda v: ("queue_name", types.check_queue(v)),
    "priority": lambda v: ("priority", types.check_priority(_integer(v, "priority"))),
    "jobKey": lambda v: ("job_key", types.check_job_key(v)),
    "jobKeyMode": lambda v: ("job_key_mode", types.check_job_key_mode(v)),
    "tz": lambda v: ("tz", types.check_tz(v)),
}


def _integer(value: str, name: str) -> int:
    if not _INTEGER.match(value):
        expected = "a whole number from 1 to 32767" if name == "max" else (
            "a whole number from -32768 to 32767"
        )
        raise CrontabError(f"invalid {name} {value!r}: expected {expected}")
    return int(value)


def _parse_options(text: str | None, where: str) -> dict[str, Any]:
    if text is None:
        return {}
    result: dict[str, Any] = {}
    seen: set[str] = set()
    for key, value in parse_qsl(text, keep_blank_values=True):
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
    return result


def _parse_payload(text: str | None, where: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json5.loads(text)
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
