"""The playground page in a real browser: Debian's chromium, driven by Playwright.

Playwright's own browser builds are never downloaded: the test launches the system's
``chromium`` through ``executable_path``. Without it the test skips, unless
``TENANTRY_TEST_REQUIRE_BROWSER`` is set (``.ci/run`` sets it and installs chromium), so
CI cannot pass without a browser. ``TENANTRY_UPDATE_SCREENSHOTS=1`` also saves the page
after an answer as ``docs/playground.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from bots.dev.playground import Playground
from core.tenants import update_plan

DOCS = Path(__file__).resolve().parents[3] / "docs"
# Runs take longer on a busy two-core machine than Playwright's default 5 s wait.
expect.set_options(timeout=30_000)


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("TENANTRY_TEST_REQUIRE_BROWSER"):
            pytest.fail("TENANTRY_TEST_REQUIRE_BROWSER is set but there is no chromium on PATH "
                        "(apt-get install chromium)")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path = chromium()
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=path, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def tab(browser: Browser, page: str) -> AsyncIterator[Page]:
    opened = await browser.new_page(viewport={"width": 1280, "height": 720})
    await opened.goto(page)
    await expect(opened.locator("#channel-CT0DEV")).to_have_class("on")
    yield opened
    await opened.close()


async def send(tab: Page, text: str) -> None:
    await tab.fill("#text", text)
    await tab.click("#send")


async def test_a_message_sent_from_the_page_is_answered_in_its_thread(
    tab: Page, tmp_path: Path,
) -> None:
    await send(tab, "Check budget.status")

    thread = tab.locator("#side")
    await expect(thread.locator(".msg.you")).to_have_text("you@Tenantry Check budget.status")
    answer = thread.locator(".msg.app.done")
    await expect(answer).to_contain_text("- budget.status:")
    await expect(tab.locator("#messages .replies")).to_have_text("1 reply")
    shot = await tab.screenshot(path=str(tmp_path / "playground.png"))
    assert shot.startswith(b"\x89PNG")
    if os.environ.get("TENANTRY_UPDATE_SCREENSHOTS"):
        (DOCS / "playground.png").write_bytes(shot)


async def test_resume_and_the_app_home_work_from_the_page(tab: Page,
                                                          playground: Playground) -> None:
    await playground.scenario.db.run(update_plan, "dev", limits={"run_tool_calls": 1})

    await send(tab, "Check budget.status and audit.recent")
    resume = tab.locator("#side .msg.app button", has_text="Resume")
    await resume.click()
    await expect(tab.locator("#side .msg.app.done")).to_contain_text("- audit.recent:")
    await expect(resume).to_have_count(0)

    await tab.click("#open-home")
    home = tab.locator("#side .home")
    await expect(home).to_contain_text("Plan `dev`")
    await home.get_by_role("button", name="Verify audit log").click()
    await expect(home).to_contain_text("Audit log verified")
