"""The dashboard in a real headless Chromium: counts, finding and retrying a failed job, a
bulk action, read-only mode, the layout at 800 and 1400 pixels wide.

Screenshots go to tests/browser/screenshots/ (ignored by git). The one in the docs,
docs/admin.png, is rewritten only when asked: ``GW_TEST_UPDATE_SCREENSHOTS=1``."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, Dialog, Page, expect

from graphile_worker_cli import WorkerContext, admin, cron, recovery
from graphile_worker_cli.cron import store as cron_store
from graphile_worker_cli.job import JobSpec
from graphile_worker_cli.worker_utils import WorkerUtils
from tests.helpers.asgi_server import serve
from tests.helpers.paths import REPO_ROOT
from tests.helpers.waiting import wait_until
from tests.helpers.worker import make_options

SCREENSHOTS = Path(__file__).parent / "screenshots"
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "admin.png"
UPDATE_SCREENSHOTS = os.environ.get("GW_TEST_UPDATE_SCREENSHOTS") == "1"
CRONTAB = "*/15 * * * * send_digest ?queue=mail\n0 3 * * * nightly_cleanup\n"


@dataclass
class Seeded:
    utils: WorkerUtils
    declined: int
    cleanup_ids: list[int]


@pytest.fixture
async def worker_utils(db_url: str) -> AsyncIterator[WorkerUtils]:
    async with await WorkerUtils.connect(db_url) as u:
        yield u


@pytest.fixture
async def seeded(worker_utils: WorkerUtils, db_url: str) -> Seeded:
    """5 ready, 3 scheduled, 1 locked, 2 failed jobs; a live worker; a known crontab."""
    u = worker_utils
    for n in range(4):
        await u.add_job("send_email", {"to": f"user{n}@example.com"}, JobSpec(queue_name="mail"))
    later = datetime.now(UTC) + timedelta(minutes=30)
    cleanup_ids = [
        (await u.add_job("purge_cache", {"bucket": n}, JobSpec(run_at=later))).id
        for n in range(3)
    ]
    declined = await u.add_job("charge_card", {"order": 1042, "amount": "19.90"},
                               JobSpec(queue_name="billing"))
    await u.permanently_fail_jobs([declined.id], "PaymentError: card declined (code 51)")
    timeout = await u.add_job("resize_image", {"path": "a.png"})
    await u.permanently_fail_jobs([timeout.id], "TimeoutError: upstream took longer than 30s")
    running = await u.add_job("resize_image", {"path": "b.png"})
    await u.add_job("resize_image", {"path": "c.png"})
    conn = await asyncpg.connect(db_url)
    try:
        await recovery.register_worker(conn, "graphile_worker", "worker-7f3a",
                                       heartbeat_interval=10.0, tasks=["resize_image"])
        await conn.execute(
            "update graphile_worker._private_jobs set locked_at = now(), "
            "locked_by = 'worker-7f3a' where id = $1",
            running.id,
        )
        await cron_store.register_crontabs(conn, "graphile_worker", ["send_digest"],
                                             datetime.now(UTC) - timedelta(days=1))
        await _seed_history(conn)
    finally:
        await conn.close()
    return Seeded(u, declined.id, cleanup_ids)


async def _seed_history(conn: asyncpg.Connection) -> None:
    """An hour of job history and queue-depth samples, so the charts have something to
    draw (tests/browser/test_dashboard_charts.py draws them from a real worker's jobs)."""
    await conn.execute("""
        insert into graphile_worker._gw_job_history (finished_at, worker_id, outcome,
            job_ids, task_identifiers, queue_names, keys, attempts, max_attempts, created_at,
            run_at, started_at, last_errors)
        select t, 'worker-7f3a', outcome, array_agg(1000 + m * 100 + n),
               array_agg((array['send_email', 'resize_image'])[1 + n % 2]),
               array_agg(null::text), array_agg(null::text), array_agg(1), array_agg(25),
               array_agg(t - wait - interval '1 second'),
               array_agg(t - wait - interval '200 ms'), array_agg(t - interval '200 ms'),
               array_agg(case when outcome = 'failed'
                              then 'TimeoutError: upstream took longer than 30s' end)
          from generate_series(1, 59) as m,
               lateral generate_series(1, 30 + round(14 * sin(m / 7.0))::int) as n,
               lateral (select now() - (60 - m) * interval '1 minute',
                               (0.2 + 0.08 * (n % 13) * (1.2 + sin(m / 7.0)))
                               * interval '1 second',
                               case when n % 17 = 0 then 'failed' else 'completed' end)
                 as at(t, wait, outcome)
         group by m, t, outcome""")
    await conn.execute("""
        insert into graphile_worker._gw_queue_samples
        select date_trunc('minute', now()) - m * interval '1 minute',
               12 + round(10 * sin((60 - m) / 7.0))::int, 3 + (m / 10) % 3, 4, 2
          from generate_series(1, 59) as m""")


async def _accept(dialog: Dialog) -> None:
    await dialog.accept()


async def open_page(
    browser: Browser, url: str, width: int = 1400, height: int = 900, timezone_id: str = "UTC"
) -> Page:
    page = await browser.new_page(
        viewport={"width": width, "height": height}, timezone_id=timezone_id
    )
    page.on("dialog", _accept)
    await page.goto(url)
    return page


async def save_screenshot(page: Page, name: str, *, docs: bool = False) -> Path:
    """Into the ignored screenshots folder; into docs/ only when asked to update it."""
    target = DOCS_SCREENSHOT if docs and UPDATE_SCREENSHOTS else SCREENSHOTS / f"{name}.png"
    target.parent.mkdir(exist_ok=True)
    await page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000
    return target


async def test_overview_shows_the_counts_of_seeded_jobs(browser: Browser, seeded: Seeded) -> None:
    app = admin.create_app(seeded.utils, crontabs=cron.parse_crontab(CRONTAB))
    async with serve(app) as url:
        page = await open_page(browser, url)
        for state, count in (("ready", 5), ("scheduled", 3), ("locked", 1), ("failed", 2),
                             ("total", 11)):
            await expect(page.locator(f"#count-{state}")).to_have_text(str(count))
        by_task = page.locator("#by-task tbody tr", has_text="purge_cache")
        await expect(by_task.locator("td").nth(2)).to_have_text("3")
        await expect(page.locator("#job-table tbody tr")).to_have_count(11)
        await expect(page.locator("#worker-table")).to_contain_text("worker-7f3a")
        await expect(page.locator("#queue-table")).to_contain_text("billing")
        await expect(page.locator("#cron-table")).to_contain_text("send_digest")
        await expect(page.locator("#cron-table")).to_contain_text("in ")  # a next run time
        # clicking a tile filters the table by that state
        await page.locator(".tile[data-state=failed]").click()
        await expect(page.locator("#job-table tbody tr")).to_have_count(2)
        await page.locator(".tile[data-state='']").click()
        await expect(page.locator("#job-table tbody tr")).to_have_count(11)
        await page.locator("#job-table tbody tr", has_text="card declined").locator(
            "input[type=checkbox]").check()
        await page.locator("#job-table").get_by_role(
            "button", name=str(seeded.declined), exact=True).click()
        await expect(page.locator("#detail-error")).to_have_text(
            "PaymentError: card declined (code 51)")
        await save_screenshot(page, "admin", docs=True)
        await page.keyboard.press("Escape")
        await expect(page.locator("#detail")).to_be_hidden()
        # live refresh: a job added now shows up without reloading the page
        await seeded.utils.add_job("send_email", {"to": "late@example.com"})
        await expect(page.locator("#count-total")).to_have_text("12", timeout=15_000)
        await page.locator("body").press("p")  # pause
        await expect(page.locator("#pause")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator("#pause")).to_have_text("Resume")


async def test_failed_job_found_by_error_text_and_retried(
    browser: Browser, seeded: Seeded
) -> None:
    async with serve(admin.create_app(seeded.utils)) as url:
        page = await open_page(browser, url)
        await expect(page.locator("#count-failed")).to_have_text("2")
        await page.locator("body").press("/")  # the search shortcut
        await expect(page.locator("#filter-error")).to_be_focused()
        await page.keyboard.type("Card Declined")
        await page.keyboard.press("Enter")
        rows = page.locator("#job-table tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("charge_card")
        await rows.first.get_by_role("button", name=str(seeded.declined)).click()
        detail = page.locator("#detail")
        await expect(detail.locator("#detail-error")).to_have_text(
            "PaymentError: card declined (code 51)")
        await expect(detail.locator("#detail-payload")).to_contain_text('"order": 1042')
        await detail.get_by_role("button", name="Run now / retry").click()
        await expect(page.locator("#toast")).to_contain_text("run now: 1 job(s)")
        await expect(detail.locator("#detail-fields")).to_contain_text("0 of 25")
        await expect(page.locator("#count-failed")).to_have_text("1")
        retried = await seeded.utils.get_job(seeded.declined)
        assert retried.attempts == 0 and retried.run_at <= datetime.now(UTC)
        await page.keyboard.press("Escape")
        await expect(detail).to_be_hidden()


async def test_bulk_complete_from_the_page(browser: Browser, seeded: Seeded) -> None:
    async with serve(admin.create_app(seeded.utils)) as url:
        page = await open_page(browser, url)
        await page.locator("#filter-task").fill("purge_cache")
        await page.locator("#filter-task").press("Enter")
        await expect(page.locator("#job-table tbody tr")).to_have_count(3)
        await page.locator("#select-page").check()
        await expect(page.locator("#selected-count")).to_have_text("3 selected")
        await page.locator("[data-bulk=complete]").click()  # confirm() is accepted
        await expect(page.locator("#toast")).to_contain_text("complete: 3 job(s)")
        await expect(page.locator("#job-table tbody")).to_contain_text("no jobs match")
        await expect(page.locator("#count-total")).to_have_text("8")
        left = await seeded.utils.list_jobs(task="purge_cache")
        assert left == []


async def test_read_only_mode_hides_and_refuses_writes(
    browser: Browser, seeded: Seeded
) -> None:
    async with serve(admin.create_app(seeded.utils, read_only=True)) as url:
        page = await open_page(browser, url)
        await expect(page.locator("#ro-badge")).to_be_visible()
        await expect(page.locator("#count-failed")).to_have_text("2")
        await expect(page.locator("#job-table tbody tr")).to_have_count(11)
        for hidden in ("#bulk", "#maintenance", "#select-page", "#detail-actions",
                       "#job-table tbody input[type=checkbox]"):
            await expect(page.locator(hidden)).to_have_count(0)
        await page.locator("#job-table").get_by_role("button", name=str(seeded.declined)).click()
        await expect(page.locator("#detail-error")).to_contain_text("card declined")
        await expect(page.get_by_role("button", name=re.compile("Run now"))).to_have_count(0)
        # a write forged from the page itself, CSRF token and all, is refused
        status = await page.evaluate(
            """async (id) => {
                const session = await (await fetch("api/session")).json();
                const response = await fetch(`api/jobs/${id}/run-now`, {
                    method: "POST", body: "{}",
                    headers: {"Content-Type": "application/json",
                              "X-CSRF-Token": session.csrf_token},
                });
                return [response.status, (await response.json()).error];
            }""",
            seeded.declined,
        )
        assert status == [403, "the dashboard is read-only: writes are disabled"]
        job = await seeded.utils.get_job(seeded.declined)
        assert job.attempts == job.max_attempts


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height

    def overlaps(self, other: Box) -> bool:
        return (self.x < other.right and other.x < self.right
                and self.y < other.bottom and other.y < self.bottom)


async def box(page: Page, selector: str) -> Box:
    found = await page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not displayed"
    return Box(found["x"], found["y"], found["width"], found["height"])


LONG_ERROR = "RuntimeError: upstream exploded\n" + "  at frame\n" * 2_000


@pytest.fixture
async def crowded(seeded: Seeded) -> tuple[Seeded, int]:
    """The seeded jobs and 60 more, one of which failed with a 22 KB error."""
    added = await seeded.utils.add_jobs([("bulk_import", {"n": n}) for n in range(60)])
    await seeded.utils.permanently_fail_jobs([added[-1].id], LONG_ERROR)
    return seeded, added[-1].id


async def test_layout_at_800_pixels_keeps_the_detail_off_the_table(
    browser: Browser, crowded: tuple[Seeded, int]
) -> None:
    seeded, long_failed = crowded
    app = admin.create_app(seeded.utils, crontabs=cron.parse_crontab(CRONTAB))
    async with serve(app) as url:
        page = await open_page(browser, url, width=800, height=900)
        await expect(page.locator("#job-table tbody tr")).to_have_count(50)
        await expect(page.locator("#worker-table")).to_contain_text("worker-7f3a")
        # 50 rows scroll inside a box of bounded height: the queues come right after it
        table = await box(page, "#job-box")
        assert table.height <= 0.65 * 900
        overflow = await page.locator("#job-box").evaluate("b => b.scrollHeight - b.clientHeight")
        assert overflow > 500
        queues = await box(page, "#queues")
        assert 0 < queues.y - table.bottom < 150
        # the detail opens in the page flow, beside nothing and over nothing
        row = page.locator("#job-table tbody tr", has_text="upstream exploded")
        await row.get_by_role("button", name=str(long_failed), exact=True).click()
        detail = page.locator("#detail")
        await expect(detail).to_be_focused()
        await expect(detail).to_be_in_viewport()
        # (boxes are measured in the viewport, which focusing the panel scrolled)
        opened, table = await box(page, "#detail"), await box(page, "#job-box")
        assert not opened.overlaps(table)
        assert not opened.overlaps(await box(page, "#jobs"))
        assert opened.y >= table.bottom
        await expect(row).to_have_class(re.compile(r"\bopen\b"))
        # the list has the start of the error, the detail all of it
        cell = row.locator("td.err")
        cell_text = await cell.text_content() or ""
        assert cell_text.startswith("RuntimeError: upstream exploded")
        assert cell_text.endswith("…") and len(cell_text) == 241
        assert await page.locator("#detail-error").text_content() == LONG_ERROR
        await save_screenshot(page, "admin-800")
        await page.keyboard.press("Escape")
        await expect(detail).to_be_hidden()
        await expect(row).not_to_have_class(re.compile(r"\bopen\b"))


async def test_layout_at_1400_pixels_puts_detail_and_queues_beside_the_table(
    browser: Browser, crowded: tuple[Seeded, int]
) -> None:
    seeded, long_failed = crowded
    app = admin.create_app(seeded.utils, crontabs=cron.parse_crontab(CRONTAB))
    async with serve(app) as url:
        page = await open_page(browser, url, width=1400, height=900)
        await expect(page.locator("#job-table tbody tr")).to_have_count(50)
        await expect(page.locator("#queue-table")).to_contain_text("billing")
        table = await box(page, "#job-box")
        assert table.width >= 800
        for section in ("#queues", "#workers", "#crontabs"):
            side = await box(page, section)
            assert side.x >= table.right, section  # beside the table, not under it
        assert (await box(page, "#queues")).y < 900  # on the first screen
        await page.locator("#job-table").get_by_role(
            "button", name=str(long_failed), exact=True).click()
        detail = page.locator("#detail")
        await expect(detail).to_be_focused()
        await expect(detail).to_be_in_viewport()
        opened, after = await box(page, "#detail"), await box(page, "#job-box")
        assert not opened.overlaps(after)
        assert not opened.overlaps(await box(page, "#jobs"))
        assert after.width == table.width  # the table kept its room
        await save_screenshot(page, "admin-1400")


async def test_times_are_relative_with_the_exact_time_beside_or_on_hover(
    browser: Browser, seeded: Seeded
) -> None:
    declined = await seeded.utils.get_job(seeded.declined)
    india = timezone(timedelta(hours=5, minutes=30))
    created = declined.created_at.astimezone(india).strftime("%Y-%m-%d %H:%M:%S UTC+05:30")
    run_at = declined.run_at.astimezone(india).strftime("%Y-%m-%d %H:%M:%S UTC+05:30")
    async with serve(admin.create_app(seeded.utils)) as url:
        page = await open_page(browser, url, timezone_id="Asia/Kolkata")
        row = page.locator("#job-table tbody tr", has_text="card declined")
        cell = row.locator("time")
        await expect(cell).to_have_text(re.compile(r"^\d+[smhd] ago$"))
        await expect(cell).to_have_attribute("title", run_at)
        await row.get_by_role("button", name=str(seeded.declined), exact=True).click()
        fields = page.locator("#detail-fields")
        created_value = fields.locator("dt:text-is('created') + dd")
        await expect(created_value.locator("time")).to_have_text(re.compile(r"^\d+[smhd] ago$"))
        await expect(created_value.locator(".exact")).to_have_text(created)
        await expect(created_value.locator("time")).to_have_attribute("title", created)
        text = await fields.text_content() or ""
        # no raw ISO times (with their microseconds) left in the panel
        assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", text), text
        assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}", text), text


async def test_cancel_a_running_job_and_bulk_cancel_waiting_ones(
    browser: Browser, seeded: Seeded, db_url: str
) -> None:
    """A job a real gw worker runs is cancelled from its detail panel: the worker aborts it
    (reason "cancelled") and it ends failed as cancelled; waiting jobs are cancelled in bulk."""
    reasons: list[str] = []

    async def render_video(payload: Any, ctx: WorkerContext) -> None:
        reasons.append(await ctx.abort_signal.wait())

    running = await seeded.utils.add_job("render_video", {"film": "intro.mp4"})
    worker = await make_options(db_url).define_job(render_video, "render_video").init()
    runner = asyncio.create_task(worker.run())
    try:
        async def held() -> bool:
            job = await seeded.utils.get_job(running.id)
            workers = await seeded.utils.list_active_workers()
            return job.locked_by == worker.worker_id and any(
                w.id == worker.worker_id for w in workers
            )

        await wait_until(held)
        async with serve(admin.create_app(seeded.utils)) as url:
            page = await open_page(browser, url)
            await page.locator("#job-table").get_by_role(
                "button", name=str(running.id), exact=True).click()
            detail = page.locator("#detail")
            await expect(detail.locator("#detail-fields")).to_contain_text(worker.worker_id)
            await detail.get_by_role("button", name="Cancel").click()  # confirm() accepted
            await expect(page.locator("#toast")).to_contain_text(
                "cancel: 1 cancel requested (running: its worker aborts it)")
            await expect(detail.locator("#detail-error")).to_have_text(
                "cancelled", timeout=15_000)
            assert reasons == ["cancelled"]
            await page.keyboard.press("Escape")
            # bulk: the three scheduled purge_cache jobs
            await page.locator("#filter-task").fill("purge_cache")
            await page.locator("#filter-task").press("Enter")
            await expect(page.locator("#job-table tbody tr")).to_have_count(3)
            await page.locator("#select-page").check()
            await page.locator("[data-bulk=cancel]").click()
            await expect(page.locator("#toast")).to_contain_text("cancel: 3 cancelled")
            await expect(page.locator("#job-table tbody")).to_contain_text("cancelled")
        for job_id in seeded.cleanup_ids:
            job = await seeded.utils.get_job(job_id)
            assert job.last_error == "cancelled" and job.attempts == job.max_attempts
        cancelled = await seeded.utils.get_job(running.id)
        assert cancelled.locked_by is None and cancelled.attempts == cancelled.max_attempts
    finally:
        worker.request_shutdown("test over")
        await asyncio.wait_for(runner, 30)


async def test_the_workers_table_shows_liveness_as_gw_workers_list_does(
    browser: Browser, seeded: Seeded, db_url: str
) -> None:
    """Alive; late with its session alive (stalled or busy: never swept), with the longest
    stall it reported; stale (late, session gone)."""
    busy = await asyncpg.connect(db_url)  # its session holds the liveness lock throughout
    try:
        await recovery.register_worker(busy, "graphile_worker", "worker-busy",
                                       heartbeat_interval=10.0, tasks=["resize_image"])
        assert await recovery.take_liveness_lock(busy, "graphile_worker", "worker-busy")
        await recovery.heartbeat(busy, "graphile_worker", "worker-busy", longest_stall=0.25)
        await recovery.register_worker(busy, "graphile_worker", "worker-gone",
                                       heartbeat_interval=10.0, tasks=["resize_image"])
        await busy.execute(
            "update graphile_worker._gw_workers set last_heartbeat_at = now() - "
            "interval '1 hour' where id in ('worker-busy', 'worker-gone')"
        )
        async with serve(admin.create_app(seeded.utils)) as url:
            page = await open_page(browser, url)
            table = page.locator("#worker-table")
            await expect(table.locator("thead")).to_contain_text("stall")

            def cells(worker_id: str) -> Any:
                return table.locator(f"tr[data-worker='{worker_id}'] td")

            await expect(cells("worker-busy").nth(5)).to_have_text("late (session alive)")
            await expect(cells("worker-busy").nth(3)).to_have_text("250ms")
            await expect(cells("worker-gone").nth(5)).to_have_text("stale")
            await expect(cells("worker-gone").nth(3)).to_have_text("\u2013")  # none reported
            await expect(cells("worker-7f3a").nth(5)).to_have_text("alive")
    finally:
        await busy.close()
