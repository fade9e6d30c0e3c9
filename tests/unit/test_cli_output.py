"""What the CLI prints for people: tables that never cut what identifies a row, a batch
job's failed items in the jobs table, and one clear line for input it cannot use."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from rich.console import Console

from graphile_worker_cli import conninfo, job, payloads
from graphile_worker_cli.cli import add_job_cmd, common, jobs_cmd
from graphile_worker_cli.errors import EXIT_USAGE, BadInputError

TASK = "send_email_to_the_customer_about_their_order"
KEY = "order-confirmation-000123456"
LOCKER = "gw-0123456789abcdef01234"


def _job(job_id: int, task: str, **fields: object) -> job.Job:
    now = datetime(2030, 1, 31, 9, 0, tzinfo=UTC)
    values: dict[str, object] = {
        "id": job_id, "task_identifier": task, "queue_name": None, "payload": {},
        "priority": 0, "run_at": now, "attempts": 0, "max_attempts": 25, "last_error": None,
        "created_at": now, "updated_at": now, "key": None, "locked_at": None,
        "locked_by": None, "revision": 0, "flags": None,
    }
    values.update(fields)
    return job.Job(**values)  # type: ignore[arg-type]


def _printed_jobs(width: int, monkeypatch: pytest.MonkeyPatch) -> str:
    out = io.StringIO()
    monkeypatch.setitem(common._consoles, "stdout", Console(file=out, width=width))
    jobs_cmd._print_jobs([
        _job(123456789, TASK, queue_name="a_rather_long_queue_name", key=KEY, locked_by=LOCKER),
        _job(2, "batchy", attempts=1,
             last_error="Batch failures:\nitem two broke\nitem three broke"),
    ], "jobs")
    return out.getvalue()


@pytest.mark.parametrize("width", [60, 80, 200])
def test_the_jobs_table_never_cuts_ids_names_keys_or_times(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _printed_jobs(width, monkeypatch)
    assert "…" not in text
    for whole in ("123456789", "2030-01-31 09:00:00", TASK, "a_rather_long_queue_name", KEY,
                  LOCKER, "Batch failures: item two broke; item three broke"):
        assert whole in text, text
    assert "\n  task:       " + TASK in text or f" {TASK} " in text


def test_a_wide_enough_table_keeps_each_job_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [line for line in _printed_jobs(400, monkeypatch).splitlines() if "batchy" in line]
    assert len(lines) == 1
    assert "Batch failures: item two broke; item three broke" in lines[0]


def test_output_to_a_pipe_is_not_cut_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(common, "_consoles", {})
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert common._console("stdout").width > 1000


@pytest.mark.parametrize(
    ("last_error", "shown"),
    [
        (None, ""),
        ("ValueError: bad\nTraceback (most recent call last):\n ...", "ValueError: bad"),
        ("Batch failures:\nfirst\nsecond", "Batch failures: first; second"),
    ],
)
def test_the_error_column_says_which_batch_items_failed(last_error: str | None, shown: str) -> None:
    assert jobs_cmd.error_summary(last_error) == shown


def test_a_stray_word_where_the_payload_goes_is_named() -> None:
    with pytest.raises(BadInputError) as caught:
        add_job_cmd.payload_argument("minutes")
    assert caught.value.message.startswith("unexpected argument 'minutes':")
    assert caught.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize("text", ["{x", '"a string"', "[1,"])
def test_text_that_meant_to_be_json_keeps_the_json_error(text: str) -> None:
    with pytest.raises(BadInputError, match="invalid payload JSON"):
        add_job_cmd.payload_argument(text)


def test_a_non_finite_payload_number_is_named_with_its_type() -> None:
    with pytest.raises(BadInputError) as caught:
        payloads.to_json({"price": float("nan")})
    assert "nan (a float) is not a JSON number" in caught.value.message
    assert "dict" not in caught.value.message.split(";")[0]


def test_a_malformed_sslmode_is_bad_input_exit_2() -> None:
    with pytest.raises(BadInputError) as caught:
        conninfo.connect_arguments("postgresql://u@h/db?sslmode=sometimes", environ={})
    assert caught.value.exit_code == EXIT_USAGE
    assert "sslmode=sometimes" in caught.value.message
    assert "verify-full" in caught.value.message
