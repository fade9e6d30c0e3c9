"""Log formats: plain lines, JSON lines with the structured fields, levels, laziness."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from graphile_worker_cli import logs

_TOUCHED = ("", "gw", "pgserver", "asyncio", "asyncpg")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure() changes process-wide logging: put it back for the next test."""
    saved = {name: logging.getLogger(name).level for name in _TOUCHED}
    handlers = list(logging.getLogger().handlers)
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_json_lines_carry_the_structured_fields() -> None:
    stream = io.StringIO()
    logs.configure(fmt="json", level="info", stream=stream)
    log = logging.getLogger("gw.worker")
    log.info(
        "job %s completed",
        42,
        extra={"gw": {"job_id": 42, "task": "send_email", "duration_ms": 12.5}},
    )
    log.warning("plain warning")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert first["level"] == "info"
    assert first["logger"] == "gw.worker"
    assert first["message"] == "job 42 completed"
    assert (first["job_id"], first["task"], first["duration_ms"]) == (42, "send_email", 12.5)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert lines[1]["level"] == "warning" and "job_id" not in lines[1]


def test_json_fields_never_replace_the_core_members_and_exceptions_are_kept() -> None:
    stream = io.StringIO()
    logs.configure(fmt="json", level="info", stream=stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("gw.test").exception("failed", extra={"gw": {"message": "sneaky"}})
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "failed"
    assert "RuntimeError: boom" in line["exception"]


def test_plain_lines_have_time_level_logger_message_and_fields() -> None:
    stream = io.StringIO()
    logs.configure(fmt="plain", level="info", stream=stream)
    logging.getLogger("gw.worker").info(
        "started", extra={"gw": {"worker_id": "w1", "tasks": "a b", "count": 3}}
    )
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
        r'INFO gw\.worker started worker_id=w1 tasks="a b" count=3\n',
        stream.getvalue(),
    )


def test_lines_below_the_level_are_neither_written_nor_formatted() -> None:
    formatted: list[str] = []

    class Costly:
        def __str__(self) -> str:
            formatted.append("yes")
            return "costly"

    stream = io.StringIO()
    logs.configure(fmt="plain", level="warning", stream=stream)
    log = logging.getLogger("gw.worker")
    log.info("value %s", Costly())
    assert stream.getvalue() == "" and formatted == []
    log.warning("value %s", Costly())
    # pytest's own capture handlers format it too, hence "at least once".
    assert "value costly" in stream.getvalue() and formatted


def test_configure_twice_replaces_its_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure(fmt="plain", level="info", stream=first)
    logs.configure(fmt="json", level="info", stream=second)
    logging.getLogger("gw.x").info("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_auto_is_plain_when_not_a_terminal_and_rich_can_be_forced() -> None:
    stream = io.StringIO()
    logs.configure(fmt="auto", level="info", stream=stream)
    logging.getLogger("gw.x").info("hello", extra={"gw": {"k": 1}})
    assert re.search(r"Z INFO gw\.x hello k=1$", stream.getvalue().strip())
    rich_stream = io.StringIO()
    logs.configure(fmt="rich", level="info", stream=rich_stream)
    logging.getLogger("gw.x").info("hello", extra={"gw": {"k": 1}})
    output = rich_stream.getvalue()
    assert "hello" in output and "k=1" in output and "gw.x" not in output


@pytest.mark.parametrize(
    ("verbose", "quiet", "default", "expected"),
    [
        (0, 0, "info", "info"),
        (1, 0, "info", "debug"),
        (3, 0, "info", "debug"),
        (0, 1, "info", "warning"),
        (0, 2, "info", "error"),
        (0, 9, "info", "error"),
        (1, 1, "warning", "warning"),
        (1, 0, "error", "warning"),
    ],
)
def test_level_from_verbosity(verbose: int, quiet: int, default: str, expected: str) -> None:
    assert logs.level_from_verbosity(verbose, quiet, default) == expected


def test_unknown_format_or_level_is_refused() -> None:
    with pytest.raises(ValueError, match="xml"):
        logs.configure(fmt="xml")
    with pytest.raises(ValueError, match="loud"):
        logs.configure(level="loud")


def _pool_warning() -> None:
    try:
        raise ConnectionError("the database system is shutting down")
    except ConnectionError:
        logging.getLogger("asyncpg.pool").warning(
            "Failed to restore the pool connection floor; %s", "retrying", exc_info=True
        )


@pytest.mark.parametrize("fmt", ["plain", "json", "rich"])
def test_a_library_warning_with_a_traceback_is_one_line(fmt: str) -> None:
    stream = io.StringIO()
    logs.configure(fmt=fmt, level="info", stream=stream)
    _pool_warning()
    text = stream.getvalue()
    assert "Traceback" not in text
    assert "Failed to restore the pool connection floor; retrying" in text
    assert "ConnectionError: the database system is shutting down" in text
    if fmt != "rich":  # rich may wrap a long line to the console width
        assert text.count("\n") == 1


def test_debug_keeps_library_tracebacks_and_gw_errors_keep_theirs() -> None:
    stream = io.StringIO()
    logs.configure(fmt="plain", level="debug", stream=stream)
    _pool_warning()
    assert "Traceback" in stream.getvalue()

    stream = io.StringIO()
    logs.configure(fmt="plain", level="info", stream=stream)
    try:
        raise ValueError("ours")
    except ValueError:
        logging.getLogger("gw.worker").warning("a gw warning", exc_info=True)
    assert "Traceback" in stream.getvalue()


def test_a_message_spanning_lines_is_one_plain_line() -> None:
    stream = io.StringIO()
    logs.configure(fmt="plain", level="info", stream=stream)
    logging.getLogger("gw.worker").warning(
        "job 7 failed: %s", "Batch failures:\nitem two broke\r\nitem three broke"
    )
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert text.rstrip("\n").endswith(
        r"job 7 failed: Batch failures:\nitem two broke\r\nitem three broke"
    )
