"""The status page in Debian's chromium through playwright: the browser, a watched page, logging in,
and reading back what the page shows (shared by the page tests)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright, expect

from tests.support.agent_process import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "tests" / "artifacts"  # screenshots, for a person to look at
MS = 1000  # playwright counts milliseconds
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class Watched:
    """One browser context and its page, and what it did: requests, socket URLs, console, dialogs."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context = context
        self.page = page
        self.requests: list[str] = []
        self.sockets: list[str] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", lambda socket: self.sockets.append(socket.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        self.console.append(f"{message.type}: {message.text}")

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    def api_requests(self, since: int = 0) -> list[str]:
        return [url for url in self.requests[since:] if "/api/" in url]

    async def token(self) -> str | None:
        value = await self.page.evaluate("() => sessionStorage.getItem('hb2r.token')")
        return str(value) if value is not None else None


async def open_page(browser: Browser, base: str, **options: Any) -> Watched:
    context = await browser.new_context(**options)
    page = await context.new_page()
    watched = Watched(context, page)
    await page.goto(base + "/")
    return watched


async def log_in(page: Page, username: str, password: str) -> None:
    await expect(page.locator("#login")).to_be_visible()
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#dashboard")).to_be_visible()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15 * MS)


def shown_seconds(text: str) -> int:
    match = re.fullmatch(r"(?:(\d+) min )?(\d+) s", text)
    assert match, text
    return int(match.group(1) or 0) * 60 + int(match.group(2))


def shown_bytes(text: str) -> float:
    match = re.fullmatch(r"(−?)([\d.]+) (B|KiB|MiB|GiB|TiB)", text)
    assert match, text
    return (-1 if match.group(1) else 1) * float(match.group(2)) * UNITS[match.group(3)]
