"""graphile_worker_cli.testing without a database: matching queued jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graphile_worker_cli import testing
from graphile_worker_cli.job import Job


def queued(**fields: Any) -> Job:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": 1, "task_identifier": "send_email", "queue_name": None, "payload": {},
        "priority": 0, "run_at": now, "attempts": 0, "max_attempts": 25, "last_error": None,
        "created_at": now, "updated_at": now, "key": None, "locked_at": None,
        "locked_by": None, "revision": 0, "flags": None,
    }
    values.update(fields)
    return Job(**values)


def test_assert_job_queued_matches_task_payload_subset_queue_and_run_at() -> None:
    at = datetime(2030, 1, 1, 9, tzinfo=UTC)
    jobs = [
        queued(id=1, payload={"to": "a@example.com", "lang": "fr", "tags": [{"k": 1}]},
               queue_name="mail", run_at=at),
        queued(id=2, task_identifier="charge", payload={"card": "4242"}),
    ]
    (found,) = testing.assert_job_queued(
        jobs, "send_email", payload={"to": "a@example.com", "tags": [{}]}, queue="mail",
        run_at=(at - timedelta(minutes=1), at + timedelta(minutes=1)),
    )
    assert found.id == 1
    assert testing.matching_jobs(jobs, payload={"card": "4242"})[0].id == 2
    assert testing.matching_jobs(jobs, "send_email", queue=None) == []
    assert testing.matching_jobs(jobs, "send_email", run_at=at + timedelta(seconds=1)) == []
    assert testing.matching_jobs(jobs, "send_email", payload={"tags": []}) == []
    with pytest.raises(AssertionError) as missing:
        testing.assert_job_queued(jobs, "send_email", payload={"to": "b@example.com"})
    assert str(missing.value).splitlines() == [
        "expected 1 job(s) with task='send_email', payload containing "
        "{'to': 'b@example.com'}, found 0; queued:",
        f"  #1 send_email queue='mail' run_at={at.isoformat()} payload="
        "{'to': 'a@example.com', 'lang': 'fr', 'tags': [{'k': 1}]}",
        "  #2 charge queue=None run_at=2030-01-01T00:00:00+00:00 payload={'card': '4242'}",
    ]
    testing.assert_job_queued(jobs, "nothing", count=0)
