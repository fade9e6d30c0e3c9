"""The dashboard's charts and history table in a real headless Chromium, drawn from jobs a
real worker finished with history on (issue 17 item 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from playwright.async_api import Browser, Page, expect

from graphile_worker_cli import PermanentFailure, admin
from graphile_worker_cli.worker import history
from tests.browser.test_dashboard import open_page, save_screenshot
from tests.helpers.asgi_server import serve
from tests.helpers.worker import S, add_job, make_options

DAY = 86400.0


async def _finish_jobs(db_url: str) -> str:
    """5 jobs completed and 2 failed for good by a real worker; one depth sample with 3
    scheduled jobs. Returns the worker's id."""
    conn = await asyncpg.connect(db_url)
    try:
        for n in range(5):
            await add_job(conn, "resize_image", {"n": n})
        for n in range(2):
            await add_job(conn, "charge_card", {"order": n})
        for _ in range(3):
            await add_job(conn, "resize_image", None,
                          run_at=datetime.now(UTC) + timedelta(hours=1))
    finally:
        await conn.close()

    async def resize_image(payload: Any) -> None:
        return None

    async def charge_card(payload: Any) -> None:
        raise PermanentFailure("PaymentError: card declined")

    worker = await (
        make_options(db_url, history_retention=DAY)
        .define_job(resize_image, "resize_image").define_job(charge_card, "charge_card").init()
    )
    await worker.run_once()
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    try:
        await history.run_upkeep(pool, S, DAY)
    finally:
        await pool.close()
    return worker.worker_id


async def _values(page: Page, selector: str) -> list[float]:
    texts = await page.locator(selector).evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('data-value'))"
    )
    return [float(text) for text in texts]


async def test_charts_and_history_show_the_jobs_a_worker_finished(
    browser: Browser, db_url: str
) -> None:
    worker_id = await _finish_jobs(db_url)
    async with serve(admin.create_app(db_url)) as url:
        page = await open_page(browser, url)
        outcomes = page.locator("#chart-outcomes")
        await expect(outcomes.locator("circle.pt").first).to_be_visible()
        # Last hour: one point a minute, so the dots add up to the jobs finished.
        assert sum(await _values(page, "#chart-outcomes circle.s-completed")) == 5
        assert sum(await _values(page, "#chart-outcomes circle.s-failed")) == 2
        assert await outcomes.locator("polyline.s-completed").count() == 1
        waits = await _values(page, "#chart-wait circle.pt")
        assert waits and all(value >= 0 for value in waits)
        assert await _values(page, "#chart-depth circle.s-scheduled") == [3]
        await expect(page.locator("#charts-note")).to_have_text("")

        table = page.locator("#history-table tbody tr")
        await expect(table).to_have_count(7)
        await expect(page.locator("#history-table")).to_contain_text(worker_id)
        failed_row = page.locator("#history-table tbody tr", has_text="charge_card").first
        await expect(failed_row).to_contain_text("PaymentError: card declined")
        await page.locator("#history-failed").check()
        await page.locator("#history-filters button[type=submit]").click()
        await expect(table).to_have_count(2)
        await save_screenshot(page, "admin-charts")

        # Last day: 15-minute buckets, shown per minute.
        await page.get_by_role("button", name="Last day").click()
        await expect(page.get_by_role("button", name="Last day")).to_have_attribute(
            "aria-pressed", "true")
        await expect(page.locator("#chart-outcomes circle.s-completed").first).to_have_attribute(
            "data-value", str(5 / 15))


async def test_an_empty_history_says_how_to_turn_it_on(browser: Browser, db_url: str) -> None:
    async with serve(admin.create_app(db_url)) as url:
        page = await open_page(browser, url)
        await expect(page.locator("#charts-note")).to_contain_text("history_retention")
        await expect(page.locator("#chart-outcomes circle.pt")).to_have_count(0)
        await expect(page.locator("#chart-outcomes svg")).to_have_count(1)
