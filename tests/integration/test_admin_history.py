"""The dashboard's history endpoints against a real database filled by a real worker:
/api/charts (outcomes, queue wait, depth per bucket) and /api/history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from starlette.testclient import TestClient

from graphile_worker_cli import PermanentFailure, admin
from graphile_worker_cli.worker import history
from tests.helpers.worker import S, add_job, make_options


async def _fill(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        for n in range(3):
            await add_job(conn, "ok", {"n": n})
        await add_job(conn, "refuse", None)
        await add_job(conn, "ok", None, run_at=datetime.now(UTC) + timedelta(hours=1))
    finally:
        await conn.close()

    async def ok(payload: Any) -> None:
        return None

    async def refuse(payload: Any) -> None:
        raise PermanentFailure("no such account")

    worker = await (
        make_options(db_url, history_retention=86400.0)
        .define_job(ok, "ok").define_job(refuse, "refuse").init()
    )
    await worker.run_once()
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    try:
        await history.run_upkeep(pool, S, 86400.0)
    finally:
        await pool.close()


@pytest.fixture
def api(db_url: str) -> Any:
    asyncio.run(_fill(db_url))
    with TestClient(admin.create_app(db_url), base_url="http://127.0.0.1",
                    client=("127.0.0.1", 40000)) as client:
        yield client


def test_charts_of_the_last_hour_count_what_the_worker_finished(api: TestClient) -> None:
    data = api.get("/api/charts").json()
    assert (data["available"], data["window"], data["bucket_seconds"]) == (True, "hour", 60)
    assert sum(p["completed"] for p in data["outcomes"]) == 3
    assert sum(p["failed"] for p in data["outcomes"]) == 1
    assert data["wait"] and all(0 <= p["p50"] <= p["p95"] for p in data["wait"])
    assert [(p["ready"], p["scheduled"], p["failed"]) for p in data["depth"]] == [(0, 1, 1)]
    day = api.get("/api/charts?window=day").json()
    assert (day["window_seconds"], day["bucket_seconds"]) == (86400, 900)
    assert sum(p["completed"] for p in day["outcomes"]) == 3


def test_history_lists_newest_first_with_filters(api: TestClient) -> None:
    data = api.get("/api/history").json()
    assert data["available"] and len(data["entries"]) == 4
    failed = api.get("/api/history?failed=true").json()["entries"]
    assert [(e["task_identifier"], e["outcome"], e["last_error"]) for e in failed] == [
        ("refuse", "failed", "no such account")]
    assert len(api.get("/api/history?task=ok&limit=2").json()["entries"]) == 2


@pytest.mark.parametrize(("query", "needle"), [
    ("charts?window=week", "unknown window 'week'"),
    ("charts?since=1h", "unknown parameter 'since'"),
    ("history?failed=maybe", "invalid failed 'maybe'"),
    ("history?limit=0", "invalid limit 0"),
    ("history?state=failed", "unknown filter 'state'"),
])
def test_bad_parameters_are_a_400_with_the_reason(
    api: TestClient, query: str, needle: str
) -> None:
    response = api.get("/api/" + query)
    assert response.status_code == 400
    assert needle in response.json()["error"]


def test_without_the_history_table_the_endpoints_say_so(db_url: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(db_url)
        try:
            await conn.execute(f"drop table {S}._gw_job_history")
        finally:
            await conn.close()

    asyncio.run(drop())
    with TestClient(admin.create_app(db_url), base_url="http://127.0.0.1",
                    client=("127.0.0.1", 40000)) as client:
        charts = client.get("/api/charts").json()
        entries = client.get("/api/history").json()
    assert (charts["available"], charts["outcomes"], charts["depth"]) == (False, [], [])
    assert entries == {"available": False, "entries": []}
