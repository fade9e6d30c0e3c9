"""The admin JSON API against a real database: reads, filters, actions, auth, CSRF, read-only."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from graphile_worker_cli import admin, cron, recovery
from graphile_worker_cli.admin.service import AdminService
from graphile_worker_cli.cron import store as cron_store
from graphile_worker_cli.job import JobSpec
from graphile_worker_cli.worker_utils import WorkerUtils

LOOPBACK = "http://127.0.0.1"
TOKEN = "s3cret-token-0123456789"
REMOTE_CLIENT = ("203.0.113.7", 40000)


@dataclass
class Seeded:
    url: str
    ready: list[int]
    scheduled: int
    failed: int
    locked: int


async def _seed(url: str) -> Seeded:
    async with await WorkerUtils.connect(url) as u:
        a = await u.add_job("send_email", {"to": "a@example.com"})
        b = await u.add_job("send_email", {"to": "b@example.com"}, JobSpec(queue_name="mail"))
        later = datetime.now(UTC) + timedelta(hours=2)
        scheduled = await u.add_job("report", {"n": 1}, JobSpec(run_at=later, job_key="daily"))
        failed = await u.add_job("charge", {"order": 42}, JobSpec(queue_name="billing"))
        await u.permanently_fail_jobs([failed.id], "Card declined: 100% over LIMIT_x")
        locked = await u.add_job("charge", {"order": 43}, JobSpec(queue_name="billing"))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "update graphile_worker._private_jobs set locked_at = now(), locked_by = 'w-dead' "
            "where id = $1",
            locked.id,
        )
        await conn.execute(
            "update graphile_worker._private_job_queues set locked_at = now(), "
            "locked_by = 'w-dead' where queue_name = 'billing'"
        )
    finally:
        await conn.close()
    return Seeded(url, [a.id, b.id], scheduled.id, failed.id, locked.id)


@pytest.fixture
def seeded(db_url: str) -> Seeded:
    return asyncio.run(_seed(db_url))


def client_for(app: Any, *, client: tuple[str, int] = ("127.0.0.1", 40000),
               base_url: str = LOOPBACK) -> TestClient:
    return TestClient(app, base_url=base_url, client=client)


@pytest.fixture
def api(seeded: Seeded) -> Iterator[TestClient]:
    with client_for(admin.create_app(seeded.url)) as c:
        yield c


def csrf(c: TestClient) -> dict[str, str]:
    """The header that makes a write genuine (the session call also sets the cookie)."""
    response = c.get("/api/session")
    assert response.status_code == 200
    return {"X-CSRF-Token": response.json()["csrf_token"]}


def job(c: TestClient, job_id: int) -> dict[str, Any]:
    response = c.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- reading


def test_overview_counts_by_state_task_and_queue(api: TestClient) -> None:
    data = api.get("/api/overview").json()
    assert data["counts"] == {"ready": 2, "scheduled": 1, "locked": 1, "failed": 1, "total": 5}
    by_task = {row["task"]: row for row in data["by_task"]}
    assert by_task["charge"]["failed"] == 1 and by_task["charge"]["locked"] == 1
    assert by_task["send_email"]["ready"] == 2
    assert by_task["report"]["scheduled"] == 1
    by_queue = {row["queue"]: row for row in data["by_queue"]}
    assert set(by_queue) == {"mail", "billing"}
    assert by_queue["billing"]["total"] == 2


def test_jobs_filters_and_pages(api: TestClient, seeded: Seeded) -> None:
    def ids(query: str) -> list[int]:
        response = api.get("/api/jobs?" + query)
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()["jobs"]]

    assert ids("error=card DECLINED") == [seeded.failed]
    assert ids("error=100%25 over") == [seeded.failed]  # % is literal text, not a wildcard
    assert ids("error=100%25 under") == []
    assert ids("error=limit_x") == [seeded.failed]
    assert ids("error=limitXx") == []  # _ is literal too
    assert ids("state=failed") == [seeded.failed]
    assert ids("state=locked") == [seeded.locked]
    assert ids("state=scheduled") == [seeded.scheduled]
    assert ids("state=ready") == sorted(seeded.ready, reverse=True)
    assert ids("task=charge") == sorted([seeded.failed, seeded.locked], reverse=True)
    assert ids("queue=mail") == [seeded.ready[1]]
    assert ids("key=daily") == [seeded.scheduled]
    assert ids("task=charge&state=locked") == [seeded.locked]
    assert ids("state=&task=") == sorted([*seeded.ready, seeded.scheduled, seeded.failed,
                                          seeded.locked], reverse=True)
    first = api.get("/api/jobs?limit=2").json()
    second = api.get("/api/jobs?limit=2&offset=2").json()
    assert first["total"] == second["total"] == 5
    assert len(first["jobs"]) == len(second["jobs"]) == 2
    assert not {j["id"] for j in first["jobs"]} & {j["id"] for j in second["jobs"]}
    assert "payload" not in first["jobs"][0]
    assert "last_error" not in first["jobs"][0]  # only the excerpt: see the test below


def test_the_list_carries_an_excerpt_of_each_error_and_the_detail_all_of_it(
    api: TestClient, seeded: Seeded
) -> None:
    traceback = "Traceback (most recent call last):\n" + "  File \"x.py\", line 1\n" * 800
    assert len(traceback) > 16_000

    async def fail_many() -> list[int]:
        async with await WorkerUtils.connect(seeded.url) as u:
            ids = [(await u.add_job("crash", {"n": n})).id for n in range(50)]
            await u.permanently_fail_jobs(ids, traceback)
        return ids

    crashed = asyncio.run(fail_many())
    response = api.get("/api/jobs?task=crash&limit=50")
    assert response.status_code == 200
    rows = response.json()["jobs"]
    assert len(rows) == 50
    for row in rows:
        assert row["last_error_excerpt"] == traceback[:240]
        assert row["last_error_truncated"] is True
        assert "last_error" not in row
    # 50 whole tracebacks would be over 800 KB; the page of excerpts stays small
    assert len(response.content) < 50 * 1_000
    short = api.get("/api/jobs?state=failed&task=charge").json()["jobs"]
    assert [(r["last_error_excerpt"], r["last_error_truncated"]) for r in short] == [
        ("Card declined: 100% over LIMIT_x", False)
    ]
    assert api.get("/api/jobs?state=ready").json()["jobs"][0]["last_error_excerpt"] is None
    # the job's own endpoint has the whole text
    assert job(api, crashed[0])["last_error"] == traceback


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("state=dead", "unknown state 'dead': expected one of ready, scheduled, locked, failed"),
        ("limit=0", "invalid limit 0: expected a number from 1 to 500"),
        ("limit=ten", "invalid limit 'ten': expected a whole number"),
        ("offset=-1", "invalid offset -1: expected a number from 0"),
        ("colour=red", "unknown filter 'colour': expected one of state, task"),
        ("task=" + "x" * 600, "task filter too long"),
        ("task=send%00email", "invalid task filter: it contains a NUL character"),
        ("queue=%00", "invalid queue filter: it contains a NUL character"),
        ("key=daily%00", "invalid key filter: it contains a NUL character"),
        ("error=card%00", "invalid error filter: it contains a NUL character"),
    ],
)
def test_bad_filters_are_400_with_a_reason(api: TestClient, query: str, reason: str) -> None:
    response = api.get("/api/jobs?" + query)
    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_job_detail_and_unknown_ids(api: TestClient, seeded: Seeded) -> None:
    detail = job(api, seeded.failed)
    assert detail["payload"] == {"order": 42}
    assert detail["last_error"] == "Card declined: 100% over LIMIT_x"
    assert detail["state"] == "failed" and detail["queue"] == "billing"
    missing = api.get("/api/jobs/987654")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no job with id 987654"}
    assert api.get("/api/jobs/abc").status_code == 400
    headers = csrf(api)
    assert api.post("/api/jobs/987654/complete", json={}, headers=headers).status_code == 404
    gone = api.post("/api/jobs/remove-by-key", json={"key": "nope"}, headers=headers)
    assert gone.status_code == 404 and "nope" in gone.json()["error"]


# -- actions


def test_single_actions(api: TestClient, seeded: Seeded) -> None:
    headers = csrf(api)

    def act(job_id: int, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = api.post(f"/api/jobs/{job_id}/{action}", json=body or {}, headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    # run now on a failed job: due now with a fresh set of attempts
    assert act(seeded.failed, "run-now")["changed"] == [seeded.failed]
    retried = job(api, seeded.failed)
    assert retried["state"] == "ready" and retried["attempts"] == 0
    # run now on a scheduled job: due now, attempts untouched
    act(seeded.scheduled, "run-now")
    assert job(api, seeded.scheduled)["state"] == "ready"
    # reschedule
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    act(seeded.scheduled, "reschedule", {"run_at": later, "priority": 5})
    moved = job(api, seeded.scheduled)
    assert moved["state"] == "scheduled" and moved["priority"] == 5
    nothing = api.post(f"/api/jobs/{seeded.scheduled}/reschedule", json={}, headers=headers)
    assert nothing.status_code == 400 and "nothing to reschedule" in nothing.json()["error"]
    naive = api.post(f"/api/jobs/{seeded.scheduled}/reschedule",
                     json={"run_at": "2030-01-01T00:00:00"}, headers=headers)
    assert naive.status_code == 400 and "UTC offset" in naive.json()["error"]
    # permanently fail, with a reason
    act(seeded.ready[0], "fail", {"reason": "bad address"})
    failed = job(api, seeded.ready[0])
    assert failed["state"] == "failed" and failed["last_error"] == "bad address"
    # complete removes the job
    assert act(seeded.ready[1], "complete")["changed"] == [seeded.ready[1]]
    assert api.get(f"/api/jobs/{seeded.ready[1]}").status_code == 404
    # a locked job is left alone and reported as skipped
    assert act(seeded.locked, "complete") == {
        "action": "complete", "changed": [], "skipped": [seeded.locked]
    }
    unknown = api.post(f"/api/jobs/{seeded.locked}/explode", json={}, headers=headers)
    assert unknown.status_code == 400 and "unknown action 'explode'" in unknown.json()["error"]


def test_bulk_actions_and_remove_by_key(api: TestClient, seeded: Seeded) -> None:
    headers = csrf(api)
    response = api.post("/api/jobs/actions", headers=headers, json={
        "action": "fail", "ids": [*seeded.ready, seeded.locked], "reason": "bulk stop",
    })
    assert response.status_code == 200
    assert response.json() == {
        "action": "fail", "changed": sorted(seeded.ready), "skipped": [seeded.locked]
    }
    assert api.get("/api/jobs?state=failed&error=bulk stop").json()["total"] == 2
    response = api.post("/api/jobs/actions", headers=headers,
                        json={"action": "run_now", "ids": [*seeded.ready, seeded.failed]})
    assert response.json()["changed"] == sorted([*seeded.ready, seeded.failed])
    assert api.get("/api/overview").json()["counts"]["failed"] == 0
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = api.post("/api/jobs/actions", headers=headers, json={
        "action": "reschedule", "ids": seeded.ready, "run_at": tomorrow, "max_attempts": 3,
    })
    assert response.json()["changed"] == sorted(seeded.ready)
    assert api.get("/api/jobs?state=scheduled").json()["total"] == 3
    assert {job(api, i)["max_attempts"] for i in seeded.ready} == {3}
    response = api.post("/api/jobs/actions", headers=headers,
                        json={"action": "complete", "ids": seeded.ready})
    assert response.json()["changed"] == sorted(seeded.ready)
    assert api.get("/api/overview").json()["counts"]["total"] == 3
    for body, reason in [
        ({"action": "complete", "ids": []}, "expected a non-empty list of job ids"),
        ({"action": "complete", "ids": ["1"]}, "invalid job id '1'"),
        ({"action": "nap", "ids": [1]}, "unknown action 'nap'"),
        ({"ids": [1]}, "invalid action None"),
    ]:
        bad = api.post("/api/jobs/actions", headers=headers, json=body)
        assert bad.status_code == 400 and reason in bad.json()["error"], bad.text
    bad_json = api.post("/api/jobs/actions", headers={**headers, "Content-Type":
                        "application/json"}, content=b"{nope")
    assert bad_json.status_code == 400 and "expected JSON" in bad_json.json()["error"]
    removed = api.post("/api/jobs/remove-by-key", headers=headers, json={"key": "daily"})
    assert removed.json() == {"removed": seeded.scheduled, "key": "daily"}
    assert api.get(f"/api/jobs/{seeded.scheduled}").status_code == 404


def test_cancel_answers_each_jobs_outcome(api: TestClient, seeded: Seeded) -> None:
    """'w-dead' is not in the registry: its job is marked, not interrupted."""
    headers = csrf(api)
    response = api.post("/api/jobs/actions", headers=headers, json={
        "action": "cancel", "ids": [seeded.ready[0], seeded.locked, seeded.failed, 999_999],
    })
    assert response.status_code == 200
    assert response.json() == {
        "action": "cancel",
        "changed": sorted([seeded.ready[0], seeded.locked]),
        "skipped": sorted([seeded.failed, 999_999]),
        "outcomes": [
            {"job_id": seeded.ready[0], "outcome": "cancelled", "worker_id": None},
            {"job_id": seeded.locked, "outcome": "marked", "worker_id": "w-dead"},
            {"job_id": seeded.failed, "outcome": "already_failed", "worker_id": None},
            {"job_id": 999_999, "outcome": "not_found", "worker_id": None},
        ],
    }
    assert job(api, seeded.ready[0])["last_error"] == "cancelled"
    one = api.post(f"/api/jobs/{seeded.ready[1]}/cancel", json={}, headers=headers)
    assert one.json()["outcomes"] == [
        {"job_id": seeded.ready[1], "outcome": "cancelled", "worker_id": None}
    ]
    assert api.post("/api/jobs/999999/cancel", json={}, headers=headers).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/api/jobs/actions", {"action": "run_now", "ids": [2**63]},
         "invalid job id 9223372036854775808: expected a positive 64-bit number"),
        ("/api/jobs/actions", {"action": "complete", "ids": [1, 2**64]},
         "invalid job id 18446744073709551616: expected a positive 64-bit number"),
        ("/api/jobs/actions", {"action": "fail", "ids": [1], "reason": "stop\u0000now"},
         "invalid reason: it contains a NUL character, which text cannot hold"),
        ("/api/jobs/remove-by-key", {"key": "dai\u0000ly"},
         "invalid key: it contains a NUL character, which text cannot hold"),
        ("/api/maintenance/force-unlock", {"worker_ids": ["w-dead\u0000"]},
         "invalid worker_ids: it contains a NUL character, which text cannot hold"),
        ("/api/maintenance/cleanup", {"keep": ["\u0000"]},
         "invalid keep: it contains a NUL character, which text cannot hold"),
    ],
)
def test_values_postgresql_cannot_take_are_400_with_a_reason(
    api: TestClient, seeded: Seeded, path: str, body: dict[str, Any], reason: str
) -> None:
    response = api.post(path, headers=csrf(api), json=body)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": reason}
    assert api.get("/api/overview").json()["counts"]["total"] == 5  # nothing changed


def test_deeply_nested_json_is_400_with_a_reason(api: TestClient, seeded: Seeded) -> None:
    headers = {**csrf(api), "Content-Type": "application/json"}
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        response = api.post("/api/jobs/actions", headers=headers, content=deep)
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid request body: JSON nested too deeply; expected a flat JSON object"
        }
    # the server is fine afterwards
    assert api.get("/api/overview").json()["counts"]["total"] == 5


def test_an_unexpected_error_is_a_json_500_without_its_details(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: AdminService) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(AdminService, "overview", broken)
    response = api.get("/api/overview")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error in the admin API (see the gw admin log)"}
    assert response.headers["cache-control"] == "no-store"


def test_every_response_forbids_caching_and_sniffing(seeded: Seeded) -> None:
    auth = admin.AdminAuth(token=TOKEN)
    with client_for(admin.create_app(seeded.url, auth=auth)) as c:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        responses = {
            "api 200": c.get("/api/jobs", headers=bearer),
            "api 400": c.get("/api/jobs?state=dead", headers=bearer),
            "api 404": c.get("/api/jobs/987654", headers=bearer),
            "api 401": c.get("/api/overview"),
            "api no route": c.get("/api/nothing-here", headers=bearer),
            "api 405": c.put("/api/overview", headers=bearer),
            "api write": c.post("/api/maintenance/sweep", headers=bearer, json={}),
            "page": c.get("/", headers=bearer),
            "page 401": c.get("/"),
        }
        script = c.get("/static/app.js", headers=bearer)
    assert [r.status_code for r in responses.values()] == [200, 400, 404, 401, 404, 405, 200,
                                                           200, 401]
    for name, response in responses.items():
        assert response.headers.get("cache-control") == "no-store", name
        assert response.headers.get("x-content-type-options") == "nosniff", name
        assert response.headers.get("referrer-policy") == "no-referrer", name
    for name in ("api 200", "api 400", "api 401"):
        assert "default-src 'none'" in responses[name].headers["content-security-policy"]
    assert "default-src 'self'" in responses["page"].headers["content-security-policy"]
    # the script is revalidated, never used stale after an upgrade; never sniffed
    assert script.status_code == 200
    assert script.headers["cache-control"] == "no-cache"
    assert script.headers["x-content-type-options"] == "nosniff"


# -- queues, workers, crontabs, maintenance


def test_queues_workers_and_maintenance(api: TestClient, seeded: Seeded) -> None:
    queues = {q["queue"]: q for q in api.get("/api/queues").json()["queues"]}
    assert queues["billing"]["locked_by"] == "w-dead" and queues["billing"]["job_count"] == 2
    assert queues["mail"]["locked_by"] is None

    async def register() -> None:
        conn = await asyncpg.connect(seeded.url)
        try:
            await recovery.register_worker(conn, "graphile_worker", "w-live",
                                           heartbeat_interval=1.0, tasks=["charge"])
            await conn.execute(
                "update graphile_worker._gw_workers set last_heartbeat_at = now() - "
                "interval '1 hour' where id = 'w-live'"
            )
            await conn.execute(
                "update graphile_worker._private_jobs set locked_by = 'w-live' where id = $1",
                seeded.locked,
            )
        finally:
            await conn.close()

    workers = api.get("/api/workers").json()
    assert workers["workers"] == []
    assert [h["id"] for h in workers["unregistered_lock_holders"]] == ["w-dead"]
    asyncio.run(register())
    workers = api.get("/api/workers").json()
    (worker,) = workers["workers"]
    assert worker["id"] == "w-live" and worker["jobs_held"] == 1 and worker["stale"] is True
    # the liveness fields of `gw workers list`: late, its session gone, no stall reported
    assert (worker["late"], worker["session_alive"], worker["longest_stall"]) == (
        True, False, None
    )
    assert worker["heartbeat_interval"] == 1.0 and worker["age"] >= 0
    assert worker["heartbeat_age"] > 3500
    headers = csrf(api)
    dry = api.post("/api/maintenance/sweep", headers=headers, json={"threshold": 60})
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True and dry.json()["worker_ids"] == ["w-live"]
    assert job(api, seeded.locked)["locked_by"] == "w-live"  # a dry run changes nothing
    real = api.post("/api/maintenance/sweep", headers=headers,
                    json={"threshold": 60, "dry_run": False})
    assert real.json()["recovered_job_ids"] == [seeded.locked]
    assert job(api, seeded.locked)["locked_by"] is None
    assert api.get("/api/workers").json()["workers"] == []
    unlock = api.post("/api/maintenance/force-unlock", headers=headers,
                      json={"worker_ids": ["w-dead"]})
    assert unlock.status_code == 200
    assert api.get("/api/queues").json()["queues"][0]["locked_by"] is None
    assert api.post("/api/maintenance/force-unlock", headers=headers,
                    json={"worker_ids": []}).status_code == 400
    bad_sweep = api.post("/api/maintenance/sweep", headers=headers, json={"threshold": -1})
    assert bad_sweep.status_code == 400 and "threshold" in bad_sweep.json()["error"]
    cleanup = api.post("/api/maintenance/cleanup", headers=headers,
                       json={"tasks": ["DELETE_PERMAFAILED_JOBS", "GC_JOB_QUEUES"]})
    assert cleanup.json()["deleted"] == {"DELETE_PERMAFAILED_JOBS": 1, "GC_JOB_QUEUES": 0}
    bad_task = api.post("/api/maintenance/cleanup", headers=headers, json={"tasks": ["ALL"]})
    assert bad_task.status_code == 400 and "unknown cleanup task" in bad_task.json()["error"]
    assert api.post("/api/maintenance/migrate", headers=headers, json={}).json()["ok"] is True
    assert api.post("/api/maintenance/vacuum", headers=headers, json={}).status_code == 400


def test_crontabs_next_run_needs_the_crontab(seeded: Seeded) -> None:
    items = cron.parse_crontab("*/5 * * * * send_digest\n0 4 * * * nightly ?id=night\n")

    async def know() -> None:
        conn = await asyncpg.connect(seeded.url)
        try:
            await cron_store.register_crontabs(conn, "graphile_worker", ["send_digest"],
                                                 datetime.now(UTC))
        finally:
            await conn.close()

    asyncio.run(know())
    with client_for(admin.create_app(seeded.url, crontabs=items)) as c:
        data = c.get("/api/crontabs").json()
    (row,) = data["crontabs"]
    assert row["id"] == "send_digest" and row["pattern"] == "*/5 * * * *"
    assert datetime.fromisoformat(row["next_run"]).minute % 5 == 0
    assert data["not_yet_known"] == ["night"]
    with client_for(admin.create_app(seeded.url)) as c:
        data = c.get("/api/crontabs").json()
    assert data["crontab_loaded"] is False
    assert data["crontabs"][0]["next_run"] is None
    assert data["crontabs"][0]["known_since"] is not None


# -- access control


def test_auth_required_off_loopback(seeded: Seeded) -> None:
    app = admin.create_app(seeded.url)
    with client_for(app, client=REMOTE_CLIENT) as remote:
        for path in ("/api/overview", "/", "/api/openapi.json"):
            response = remote.get(path)
            assert response.status_code == 403
            assert "authentication required" in response.text
    # a loopback client reaching us under a foreign host name (DNS rebinding) is refused too
    with client_for(app, base_url="http://evil.example") as rebound:
        assert rebound.get("/api/overview").status_code == 403
    with client_for(app, base_url="http://localhost:5678") as local:
        assert local.get("/api/overview").status_code == 200


def test_token_and_basic_auth(seeded: Seeded) -> None:
    auth = admin.AdminAuth.from_options(TOKEN, "ops:hunter2")
    app = admin.create_app(seeded.url, auth=auth)
    with client_for(app, client=REMOTE_CLIENT, base_url="http://admin.example") as c:
        denied = c.get("/api/overview")
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"].startswith("Basic")
        assert c.get("/api/overview", headers={"Authorization": "Bearer wrong"}).status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert c.get("/api/overview", headers=bearer).status_code == 200
        # the bearer header is not sent by browsers on their own: no CSRF token needed
        write = c.post("/api/maintenance/sweep", headers=bearer, json={})
        assert write.status_code == 200, write.text
        basic = "Basic " + base64.b64encode(b"ops:hunter2").decode()
        wrong = "Basic " + base64.b64encode(b"ops:hunter3").decode()
        assert c.get("/api/overview", headers={"Authorization": basic}).status_code == 200
        assert c.get("/api/overview", headers={"Authorization": wrong}).status_code == 401
        # basic credentials are replayed by browsers: writes still need the CSRF token
        no_csrf = c.post("/api/maintenance/sweep", headers={"Authorization": basic}, json={})
        assert no_csrf.status_code == 403
        assert c.get("/?token=wrong").status_code == 401
        login = c.get(f"/?token={TOKEN}&x=1", follow_redirects=False)
        assert login.status_code == 303
        assert login.headers["location"] == "http://admin.example/?x=1"
        assert "httponly" in login.headers["set-cookie"].lower()
        assert c.get("/api/overview").status_code == 200  # the cookie now authenticates


def test_csrf_enforced(api: TestClient, seeded: Seeded) -> None:
    url = f"/api/jobs/{seeded.failed}/run-now"
    refused = api.post(url, json={})
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    headers = csrf(api)
    assert api.post(url, json={}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    cross = api.post(url, json={}, headers={**headers, "Origin": "http://evil.example"})
    assert cross.status_code == 403 and "cross-origin" in cross.json()["error"]
    site = api.post(url, json={}, headers={**headers, "Sec-Fetch-Site": "cross-site"})
    assert site.status_code == 403
    assert job(api, seeded.failed)["state"] == "failed"  # none of those went through
    ok = api.post(url, json={}, headers={**headers, "Origin": LOOPBACK})
    assert ok.status_code == 200
    assert job(api, seeded.failed)["state"] == "ready"
    api.cookies.clear()  # the header alone, without its cookie, is not enough
    assert api.post(url, json={}, headers=headers).status_code == 403


def test_read_only_refuses_writes(seeded: Seeded) -> None:
    with client_for(admin.create_app(seeded.url, read_only=True)) as c:
        session = c.get("/api/session").json()
        assert session["read_only"] is True
        headers = {"X-CSRF-Token": session["csrf_token"]}
        assert c.get("/api/overview").status_code == 200
        for path, body in [
            (f"/api/jobs/{seeded.failed}/run-now", {}),
            ("/api/jobs/actions", {"action": "complete", "ids": seeded.ready}),
            ("/api/jobs/remove-by-key", {"key": "daily"}),
            ("/api/maintenance/cleanup", {}),
        ]:
            response = c.post(path, json=body, headers=headers)
            assert response.status_code == 403
            assert response.json() == {"error": "the dashboard is read-only: writes are disabled"}
        assert c.get("/api/overview").json()["counts"]["total"] == 5


def test_secrets_are_not_rendered(seeded: Seeded) -> None:
    with_password = seeded.url.replace("postgres@", "postgres:topsecret@")
    app = admin.create_app(seeded.url, database_label=with_password)
    with client_for(app) as c:
        session = c.get("/api/session").json()
        page = c.get("/").text
    assert "topsecret" not in str(session) and "topsecret" not in page
    assert "***" in session["database"]


def test_openapi_and_mounting(seeded: Seeded) -> None:
    inner = admin.create_app(seeded.url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with inner.router.lifespan_context(inner):  # closes the pool the app opened
            yield

    outer = Starlette(routes=[Mount("/ops/queue", app=inner)], lifespan=lifespan)
    with client_for(outer) as c:
        page = c.get("/ops/queue/")
        assert page.status_code == 200 and '<base href="/ops/queue/">' in page.text
        assert c.get("/ops/queue/static/app.js").status_code == 200
        assert c.get("/ops/queue/api/overview").json()["counts"]["total"] == 5
        spec = c.get("/ops/queue/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert spec["servers"] == [{"url": "/ops/queue"}]
    for path in ("/api/overview", "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/actions",
                 "/api/jobs/{job_id}/{action}", "/api/jobs/remove-by-key", "/api/queues",
                 "/api/workers", "/api/crontabs", "/api/maintenance/{operation}"):
        assert path in spec["paths"]


# -- the command
