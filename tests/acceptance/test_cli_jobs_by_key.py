"""``gw jobs show --key K`` as a real subprocess (issue 17 item 5)."""

from __future__ import annotations

import json

import asyncpg

from tests.acceptance.test_cli_jobs import gw, one_error_line


async def test_jobs_show_by_key(db_url: str, conn: asyncpg.Connection) -> None:
    job_id = await conn.fetchval(
        "select id from graphile_worker.add_job('send', '{\"to\": \"a\"}'::json,"
        " job_key := 'mail:a')"
    )
    shown = json.loads((await gw("jobs", "show", "--key", "mail:a", "--json", "-c", db_url)).stdout)
    assert (shown["id"], shown["key"], shown["payload"]) == (job_id, "mail:a", {"to": "a"})
    human = await gw("jobs", "show", "--key", "mail:a", "-c", db_url)
    assert human.returncode == 0 and '"to": "a"' in human.stdout
    one_error_line(await gw("jobs", "show", "--key", "nope", "-c", db_url), 1,
                   "no job with key 'nope'")
    one_error_line(await gw("jobs", "show", "-c", db_url), 2, "a job id or --key")
    one_error_line(await gw("jobs", "show", str(job_id), "--key", "mail:a", "-c", db_url), 2,
                   "a job id or --key")
