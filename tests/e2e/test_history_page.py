"""The status page's history in a real browser, against a real `hb2r run` that encoded real clips.

As tests/e2e/test_status_page.py: Debian's chromium, headless, through playwright (never
`playwright install`); the agent on a free loopback port; clips made with ffmpeg. One encode is
published and one file (the first 4 KiB of a clip, which HandBrakeCLI cannot read) is dead, then
the page is looked at on a desktop in light mode and on a phone in dark mode: the Recent rows say
what /api/history says, and the three charts are drawn (canvases of a real size, the series in
their legends, bars in the page's colours for the scheme: read back from the canvas's pixels).
Screenshots go to tests/artifacts/ (git-ignored, as the encoding one).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.agent_process import AgentProcess
from tests.support.browser import ARTIFACTS, CHROMIUM, MS, browser, log_in, open_page, shown_bytes
from tests.support.clips import make_clip
from tests.support.configs import write_config
from tests.support.e2e_api import ADMIN, VIEWER, VIEWER_PASSWORD, Client, drop
from tests.support.ports import free_port
from tests.support.waiting import DEADLINE, wait_for_async

__all__ = ["browser"]  # the fixture

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test installs it)")

LIGHT = {"--ready": (21, 128, 61), "--text": (28, 31, 36)}  # app.css, light
DARK = {"--ready": (74, 222, 128), "--text": (230, 232, 235)}  # app.css, prefers-color-scheme: dark

# How many pixels of a colour a chart's canvas holds (opaque ones, within a little of it).
PIXELS_OF = """([selector, rgb]) => {
    const canvas = document.querySelector(selector);
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] > 200 && Math.abs(data[i] - rgb[0]) <= 12 && Math.abs(data[i + 1] - rgb[1]) <= 12
            && Math.abs(data[i + 2] - rgb[2]) <= 12) count += 1;
    }
    return count;
}"""


async def ended_encodes(api: Client, agent: AgentProcess, token: str) -> dict[str, Any]:
    """Wait until the history has the published encode and the dead job, and the queue is empty again."""

    async def both() -> dict[str, Any] | None:
        status, body = await api.get("/api/history?days=30", token)
        if status != 200:
            return None
        outcomes = sorted(event["outcome"] for event in body["recent"])
        return body if outcomes == ["dead", "done"] and body["daily"][-1]["queue_last"] == 0 else None

    return await wait_for_async(both, what="a done and a dead encode in /api/history", agent=agent, deadline=DEADLINE)


async def charts_drawn(page: Page) -> dict[str, dict[str, Any]]:
    """Return, per chart, its canvas's CSS size and its legend's series labels."""
    found: dict[str, dict[str, Any]] = await page.evaluate(
        """() => Object.fromEntries(['saved', 'encodes', 'queue'].map((name) => {
            const figure = document.getElementById('chart-' + name);
            const canvas = figure.querySelector('.u-wrap canvas');
            const box = canvas ? canvas.getBoundingClientRect() : {width: 0, height: 0, right: 0};
            const labels = [...figure.querySelectorAll('.u-legend .u-series .u-label')]
                .map((label) => label.textContent);
            return [name, {width: box.width, height: box.height, right: box.right, labels}];
        }))"""
    )
    return found


async def test_the_recent_encodes_and_the_charts_show_on_a_desktop_and_on_a_phone_in_dark_mode(
    tmp_path: Path, agents: Callable[[Path], AgentProcess], browser: Browser
) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    short = make_clip(clips / "short.mkv", seconds=4, size="640x360")
    truncated = clips / "truncated.mkv"
    truncated.write_bytes(short.read_bytes()[:4096])
    port = free_port()
    config = write_config(tmp_path, port=port, users=ADMIN + VIEWER, attempts=1)
    agent = agents(config)
    async with aiohttp.ClientSession() as http:
        api = Client(http, port)
        await api.healthy(agent)
        drop(truncated, tmp_path / "tv" / "broken.mkv")
        drop(short, tmp_path / "tv" / "short.mkv")
        token = await api.login("viewer", VIEWER_PASSWORD)
        history = await ended_encodes(api, agent, token)
        today = history["daily"][-1]
        assert (today["encodes"], today["failures"]) == (1, 1)
        assert today["saved_bytes"] > 0 and today["queue_peak"] >= 1
        done = next(event for event in history["recent"] if event["outcome"] == "done")
        dead = next(event for event in history["recent"] if event["outcome"] == "dead")
        assert (done["path"], done["library"], dead["path"]) == ("short.mkv", "tv", "broken.mkv")
        assert done["seconds"] > 0 and done["output_bytes"] < done["input_bytes"]
        assert dead["error"]

        for name, options, colours in (
            ("status-page-history.png", {"viewport": {"width": 1100, "height": 900}}, LIGHT),
            (
                "status-page-history-phone-dark.png",
                {"viewport": {"width": 390, "height": 844}, "color_scheme": "dark", "is_mobile": True},
                DARK,
            ),
        ):
            watched = await open_page(browser, api.base, **options)
            page = watched.page
            await log_in(page, "viewer", VIEWER_PASSWORD)

            # Recent: the encode with its time, sizes and saving; the dead job with its reason.
            rows = page.locator("#recent li")
            await expect(rows).to_have_count(2, timeout=15 * MS)
            await expect(page.locator("#recent-count")).to_have_text("(2)")
            shown_done = page.locator("#recent li[data-outcome=done]")
            await expect(shown_done.locator(".name")).to_have_text("short.mkv")
            await expect(shown_done).to_contain_text(re.compile(r"tv · took \d+ s"))
            sizes = re.fullmatch(r"(.+) → (.+)", await shown_done.locator(".sizes").inner_text())
            assert sizes, await shown_done.inner_text()
            assert abs(shown_bytes(sizes.group(1)) - done["input_bytes"]) <= 0.06 * done["input_bytes"]
            assert abs(shown_bytes(sizes.group(2)) - done["output_bytes"]) <= 0.06 * done["output_bytes"]
            share = round(100 * done["saved_bytes"] / done["input_bytes"])
            await expect(shown_done.locator(".saving")).to_contain_text(f"({share} %)")
            shown_dead = page.locator("#recent li[data-outcome=dead]")
            await expect(shown_dead.locator(".name")).to_have_text("broken.mkv")
            await expect(shown_dead.locator(".outcome")).to_have_text("dead")
            await expect(shown_dead.locator(".why")).to_have_text(dead["error"])

            # The charts: drawn, as wide as their cards allow, with their series.
            charts = await charts_drawn(page)
            width = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], width  # nothing wider than the screen
            for chart in charts.values():
                assert chart["width"] >= 200 and chart["height"] > 100, charts
                assert chart["right"] <= width[1], charts
            assert charts["saved"]["labels"] == ["day", "saved"]
            assert charts["encodes"]["labels"] == ["day", "encoded", "failed"]
            assert charts["queue"]["labels"] == ["day", "queue"]
            # Today's saving is a bar in the scheme's green; axis labels in the scheme's text colour.
            saved_canvas = "#chart-saved .u-wrap canvas"
            assert await page.evaluate(PIXELS_OF, [saved_canvas, colours["--ready"]]) > 50
            assert await page.evaluate(PIXELS_OF, [saved_canvas, colours["--text"]]) > 20
            other = DARK if colours is LIGHT else LIGHT
            assert await page.evaluate(PIXELS_OF, [saved_canvas, other["--ready"]]) == 0

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            screenshot = ARTIFACTS / name
            await page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            refused = [line for line in watched.console if "Content Security Policy" in line or "Refused" in line]
            assert refused == [], refused
            assert all(url.startswith(api.base) for url in watched.requests), watched.requests
            assert watched.errors == [] and watched.dialogs == []
            await watched.context.close()
    assert agent.stop() == 0, agent.log_tail()
