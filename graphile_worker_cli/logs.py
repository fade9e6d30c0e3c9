"""Log output: rich on a terminal, plain lines or JSON lines otherwise.

gw's loggers are ``logging.getLogger("gw.<area>")``. Structured fields go in
``extra={"gw": {...}}``; every format shows them (``key=value`` or JSON members). Use lazy
%-style arguments (``log.info("job %s done", job_id)``): nothing is formatted unless the
level is on.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

FORMATS = ("auto", "rich", "plain", "json")
LEVELS = ("debug", "info", "warning", "error")
FIELDS_ATTRIBUTE = "gw"

# Libraries whose INFO lines are noise for gw's users.
_QUIET_LIBRARIES = ("pgserver", "asyncio", "asyncpg")


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record carries in ``extra={"gw": {...}}``."""
    value = getattr(record, FIELDS_ATTRIBUTE, None)
    return value if isinstance(value, dict) else {}


def _utc(record: logging.LogRecord, *, millis: bool) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(char in text for char in ' "=\n\t'):
        return json.dumps(text)
    return text


def format_fields(values: dict[str, Any]) -> str:
    """``key=value`` pairs, values quoted when they contain spaces, quotes or ``=``."""
    return " ".join(f"{key}={_plain_value(value)}" for key, value in values.items())


class PlainFormatter(logging.Formatter):
    """``2026-11-29T14:00:00Z INFO gw.worker message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        time = _utc(record, millis=False)
        # One line per event: a message that spans lines (a batch job's "Batch failures:"
        # list) shows its line breaks as \n, as the field values do.
        message = record.getMessage().replace("\r", "\\r").replace("\n", "\\n")
        line = f"{time} {record.levelname} {record.name} {message}"
        extra = fields(record)
        if extra:
            line += " " + format_fields(extra)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc(record, millis=True),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line.setdefault("exception", self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class RichMessageFormatter(logging.Formatter):
    """The message and its fields; rich's handler adds time and level itself."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        extra = fields(record)
        if extra:
            message += "  " + format_fields(extra)
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return message


def _rich_handler(stream: IO[str]) -> logging.Handler:
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(
        console=Console(file=stream),
        show_path=False,
        markup=False,
        rich_tracebacks=False,
        log_time_format="[%X]",
    )
    handler.setFormatter(RichMessageFormatter())
    return handler


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def make_handler(fmt: str = "auto", stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing in ``fmt`` to ``stream`` (default stderr)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (expected one of {', '.join(FORMATS)})")
    stream = sys.stderr if stream is None else stream
    if fmt == "rich" or (fmt == "auto" and _is_tty(stream)):
        return _rich_handler(stream)
    handler: logging.Handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    return handler


class _LibraryTracebacksOnOneLine(logging.Filter):
    """A library warning that carries a traceback becomes one line ending with the error.

    asyncpg's pool logs a full traceback at WARNING each time it fails to reopen its
    minimum connection, i.e. for every retry while PostgreSQL restarts; the worker's own
    retry lines already say what is going on. At debug level the traceback is kept."""

    def __init__(self, keep_tracebacks: bool) -> None:
        super().__init__()
        self._keep = keep_tracebacks

    def filter(self, record: logging.LogRecord) -> bool:
        if (self._keep or record.levelno >= logging.ERROR or not record.exc_info
                or record.name.startswith("gw")):
            return True
        error = record.exc_info[1]
        if error is not None:
            detail = str(error).strip() or type(error).__name__
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {detail})"
            record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


def configure(*, fmt: str = "auto", level: str = "info", stream: IO[str] | None = None) -> None:
    """Send all log records at ``level`` and above to stderr (or ``stream``) in ``fmt``.

    Calling it again replaces what an earlier call installed; other handlers (pytest's,
    an application's) are left alone.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r} (expected one of {', '.join(LEVELS)})")
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_gw_installed", False):
            root.removeHandler(old)
            old.close()
    handler = make_handler(fmt, stream)
    # Tagged so a second configure() replaces exactly what the first one installed.
    handler._gw_installed = True  # type: ignore[attr-defined]
    handler.addFilter(_LibraryTracebacksOnOneLine(keep_tracebacks=level == "debug"))
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric)
    logging.getLogger("gw").setLevel(numeric)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def level_from_verbosity(verbose: int, quiet: int, default: str = "info") -> str:
    """The level after ``-v`` (more detail) and ``-q`` (less) counts, clamped to LEVELS."""
    if default not in LEVELS:
        raise ValueError(f"unknown log level {default!r} (expected one of {', '.join(LEVELS)})")
    index = LEVELS.index(default) - verbose + quiet
    return LEVELS[min(max(index, 0), len(LEVELS) - 1)]
