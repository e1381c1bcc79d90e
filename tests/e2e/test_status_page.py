"""The status page in a real browser, against a real `hb2r run` encoding real clips.

Debian's chromium (/usr/bin/chromium), headless, driven by playwright's Python package: never
`playwright install`, which downloads a browser build of its own. Each test writes a config
with users admin and viewer and `server.listen` on a free loopback port, starts the agent,
puts clips made with ffmpeg (and a truncated one, which HandBrakeCLI cannot read: a dead
job) in the watched folder, and looks at the page as an operator would. Every wait is
playwright's expect or wait_for_function with a timeout; no fixed sleeps.

A screenshot taken mid-encode goes to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.agent_process import AgentProcess
from tests.support.browser import ARTIFACTS, CHROMIUM, MS, browser, log_in, open_page, shown_bytes, shown_seconds
from tests.support.clips import make_clip
from tests.support.configs import write_config
from tests.support.e2e_api import ADMIN, ADMIN_PASSWORD, VIEWER, VIEWER_PASSWORD, Client, drop
from tests.support.ports import free_port
from tests.support.waiting import DEADLINE, wait_for_async

HOSTILE = "<img src=x onerror=alert(1)>.mkv"

__all__ = ["browser"]  # the fixture

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test installs it)")


def page_config(root: Path, *, port: int) -> Path:
    """A library tv, one encode at a time, one attempt per job: a bad file is dead at once."""
    return write_config(root, port=port, users=ADMIN + VIEWER, attempts=1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two minutes of 640x360 (HandBrakeCLI works on it for a quarter of a minute: long enough to watch),
    a short one, and the first 4 KiB of a real clip, which HandBrakeCLI cannot read."""
    folder = tmp_path_factory.mktemp("clips")
    long = make_clip(folder / "long.mkv", seconds=120, size="640x360")
    truncated = folder / "truncated.mkv"
    truncated.write_bytes(long.read_bytes()[:4096])
    return {"long": long, "short": make_clip(folder / "short.mkv", seconds=2), "truncated": truncated}


async def progress_above(page: Page, floor: float) -> float:
    """Wait until the running encode's bar shows more than floor; return what it shows."""
    handle = await page.wait_for_function(
        """(floor) => {
            const bar = document.querySelector('#encodes li progress');
            return bar !== null && bar.value > floor ? bar.value : false;
        }""",
        arg=floor,
        timeout=DEADLINE * MS,
    )
    return float(await handle.json_value())


def hostile_dead_job(root: Path, clips: dict[str, Path]) -> None:
    """The truncated clip under a name that is HTML: it must show as this name, never as markup."""
    shutil.copyfile(clips["truncated"], root / "tv" / HOSTILE)


@contextlib.asynccontextmanager
async def agent_with_a_dead_job(
    root: Path, clips: dict[str, Path], agents: Callable[[Path], AgentProcess]
) -> AsyncIterator[tuple[AgentProcess, Path, Client]]:
    """Start an agent on a page config whose library holds the hostile dead job; yield it, its config
    and an API client, once it answers /health."""
    port = free_port()
    config = page_config(root, port=port)
    hostile_dead_job(root, clips)
    agent = agents(config)
    async with aiohttp.ClientSession() as http:
        api = Client(http, port)
        await api.healthy(agent)
        yield agent, config, api


async def test_an_admin_watches_an_encode_live_retries_a_dead_job_and_the_page_survives_a_restart(
    tmp_path: Path, clips: dict[str, Path], agents: Callable[[Path], AgentProcess], browser: Browser
) -> None:
    async with agent_with_a_dead_job(tmp_path, clips, agents) as (agent, config, api):
        admin = await open_page(browser, api.base, viewport={"width": 1100, "height": 900})
        page = admin.page
        await log_in(page, "admin", ADMIN_PASSWORD)
        await expect(page.locator("#who")).to_have_text("admin (admin)")
        await expect(page.locator("#version")).not_to_have_text("–")

        # The dead job's name is shown as text: no <img> made, no alert.
        dead = page.locator("#dead li")
        await expect(dead.locator(".name")).to_have_text(HOSTILE, timeout=DEADLINE * MS)
        assert await page.locator("#dashboard img").count() == 0
        await expect(dead.locator("button[data-action=retry]")).to_be_visible()
        tv = page.locator(".library[data-library=tv]")
        await expect(tv.locator("dd[data-count=dead]")).to_have_text("1")
        saved = tv.locator(".space .saved")
        await expect(saved).to_have_text("0 B")
        await expect(tv.locator(".condition")).to_have_text("Ready", timeout=30 * MS)

        # An encode: its bar appears and moves, with fps and an ETA; meanwhile nothing polls.
        drop(clips["long"], tmp_path / "tv" / "long.mkv")
        first = await progress_above(page, 0.0)
        second = await progress_above(page, first)
        requests_before = len(admin.requests)
        third = await progress_above(page, second)
        assert 0 < first < second < third <= 100
        assert admin.api_requests(requests_before) == [], "the page polled the API while the socket was open"
        encode = page.locator("#encodes li")
        await expect(encode.locator(".name")).to_have_text("long.mkv")
        await expect(encode.locator(".numbers")).to_contain_text(re.compile(r"\d+\.\d fps"))
        await expect(encode.locator(".numbers")).to_contain_text(re.compile(r"ETA \d+ (s|min)"))
        await expect(tv.locator(".condition")).to_have_text("Progressing")

        # The admin retries the dead job: it waits in the queue behind the encode, and the gate says why.
        await dead.locator("button[data-action=retry]").click()
        await expect(page.locator("#queue li .name")).to_have_text(HOSTILE, timeout=10 * MS)
        await expect(page.locator("#dead li")).to_have_count(0)
        await expect(page.locator("#queue li button[data-action=cancel]")).to_be_visible()
        run_next = page.locator("#queue li button[data-action=priority]")
        await expect(run_next).to_have_text("Run next")
        async with page.expect_response(lambda response: response.url.endswith("/priority")) as moved:
            await run_next.click()  # the one waiting job: it stays first, and the page says no error
        assert (await moved.value).status == 200
        await expect(page.locator("#queue li .name")).to_have_text(HOSTILE)
        await expect(page.locator("#notice")).to_be_hidden()
        await expect(page.locator("#gate-verdict")).to_have_attribute("data-open", "false", timeout=10 * MS)
        await expect(page.locator("#gate-reasons")).to_contain_text("1 job running, the most allowed is 1")
        await expect(encode).to_have_count(1)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        screenshot = ARTIFACTS / "status-page-encoding.png"
        await page.screenshot(path=str(screenshot), full_page=True)
        await expect(encode).to_have_count(1)  # still encoding after the shot: it shows the encode
        assert screenshot.stat().st_size > 10_000

        # The encode ends: done, the space saved is counted; the retried job runs and is dead again.
        await expect(tv.locator("dd[data-count=done]")).to_have_text("1", timeout=DEADLINE * MS)
        await expect(saved).not_to_have_text("0 B")
        await expect(page.locator("#dead li .name")).to_have_text(HOSTILE, timeout=DEADLINE * MS)
        await expect(page.locator("#encodes li")).to_have_count(0)
        await expect(page.locator("#queue li")).to_have_count(0)
        token = await admin.token()
        assert token
        status, body = await api.get("/api/status", token)
        assert status == 200
        space = body["libraries"][0]["space"]
        assert space["saved_bytes"] > 0
        assert abs(shown_bytes(await saved.inner_text()) - space["saved_bytes"]) <= 0.06 * space["saved_bytes"]
        assert body["libraries"][0]["counts"]["done"] == 1

        # The agent restarts: the page notices, reconnects by itself and is live again.
        uptime_before = shown_seconds(await page.locator("#uptime").inner_text())
        assert agent.stop() == 0
        await expect(page.locator("#connection")).not_to_have_attribute("data-state", "live", timeout=10 * MS)
        agent = agents(config)
        await api.healthy(agent)
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=30 * MS)
        await expect(page.locator("#login")).to_be_hidden()
        drop(clips["short"], tmp_path / "tv" / "short.mkv")
        await expect(tv.locator("dd[data-count=done]")).to_have_text("2", timeout=DEADLINE * MS)
        assert len(admin.sockets) >= 2

        # The token went only in headers and the socket's first message, never in a URL.
        assert all(token not in url for url in admin.requests + admin.sockets)
        assert await page.evaluate("() => localStorage.length") == 0
        assert admin.dialogs == [] and admin.errors == []
        refused = [line for line in admin.console if "Content Security Policy" in line or "Refused" in line]
        assert refused == [], refused
        assert shown_seconds(await page.locator("#uptime").inner_text()) < uptime_before  # the new agent's

        # The browser enforces the policy: neither an inline script nor an inline handler runs.
        await page.evaluate(
            """() => {
                window.violations = [];
                document.addEventListener('securitypolicyviolation', (event) => {
                    window.violations.push(event.effectiveDirective);
                });
                const script = document.createElement('script');
                script.textContent = 'window.inlineRan = true';
                document.body.append(script);
                const button = document.createElement('button');
                button.setAttribute('onclick', 'window.handlerRan = true');
                document.body.append(button);
                button.click();
            }"""
        )
        await page.wait_for_function("() => window.violations.length >= 2", timeout=5 * MS)
        ran = await page.evaluate("() => [window.inlineRan === true, window.handlerRan === true, window.violations]")
        assert ran == [False, False, ["script-src-elem", "script-src-attr"]], ran
        await admin.context.close()
    assert agent.stop() == 0, agent.log_tail()


async def test_a_user_sees_a_paused_library_and_the_lists_without_buttons_and_a_refused_token_logs_out(
    tmp_path: Path, clips: dict[str, Path], agents: Callable[[Path], AgentProcess], browser: Browser
) -> None:
    async with agent_with_a_dead_job(tmp_path, clips, agents) as (agent, _, api):
        admin_token = await api.login("admin", ADMIN_PASSWORD)
        headers = {"Authorization": f"Bearer {admin_token}"}

        # A phone, in dark mode.
        viewer = await open_page(
            browser, api.base, viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True
        )
        page = viewer.page
        await page.fill("#username", "viewer")
        await page.fill("#password", "not the password")
        await page.click("#login-form button[type=submit]")
        await expect(page.locator("#login-error")).to_have_text("wrong user name or password")
        await log_in(page, "viewer", VIEWER_PASSWORD)
        await expect(page.locator("#who")).to_have_text("viewer (user)")

        await expect(page.locator("#dead li .name")).to_have_text(HOSTILE, timeout=DEADLINE * MS)
        async with api.http.post(f"{api.base}/api/libraries/tv/pause", headers=headers) as response:
            assert response.status == 200, await response.text()
        tv = page.locator(".library[data-library=tv]")
        await expect(tv.locator(".condition")).to_have_text("Paused", timeout=10 * MS)
        await expect(tv.locator(".reason")).not_to_be_empty()
        drop(clips["short"], tmp_path / "tv" / "short.mkv")
        await expect(page.locator("#queue li .name")).to_have_text("short.mkv", timeout=DEADLINE * MS)
        await expect(page.locator("#gate-verdict")).to_be_visible()
        assert await page.locator("button[data-action]").count() == 0
        assert await page.locator("#dashboard img").count() == 0

        # Phone width: nothing wider than the screen; dark colours from prefers-color-scheme.
        width = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], width
        background = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 20, 24)", background

        async with api.http.post(f"{api.base}/api/libraries/tv/resume", headers=headers) as response:
            assert response.status == 200, await response.text()
        await expect(tv.locator("dd[data-count=done]")).to_have_text("1", timeout=DEADLINE * MS)
        await expect(page.locator("#queue li")).to_have_count(0)
        await expect(tv.locator(".condition")).to_have_text("Ready", timeout=30 * MS)
        assert await page.locator("button[data-action]").count() == 0

        # The token is revoked elsewhere: the socket is closed with 4401 and the login form is back.
        token = await viewer.token()
        assert token
        logout = api.http.post(f"{api.base}/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
        async with logout as response:
            assert response.status == 200
        await expect(page.locator("#login")).to_be_visible(timeout=10 * MS)
        await expect(page.locator("#login-error")).to_contain_text("session has ended")
        await expect(page.locator("#dashboard")).to_be_hidden()
        assert await viewer.token() is None
        assert await page.locator("#dead li").count() == 0  # nothing left on show
        assert viewer.dialogs == [] and viewer.errors == []
        await viewer.context.close()
    assert agent.stop() == 0, agent.log_tail()


# --- hosts: a host that stopped reporting long ago is a row the test writes into the agent's database
# (what a host dead for hours leaves behind, without a second machine or hours of waiting).

LONG_AGO = "2024-05-01T12:00:00.000000+00:00"


async def test_the_page_lists_the_hosts_marks_the_planner_and_a_late_host(
    tmp_path: Path, agents: Callable[[Path], AgentProcess], browser: Browser
) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port, users=ADMIN + VIEWER)
    config.write_text(config.read_text() + "host: {name: nas-1}\n")
    agent = agents(config)
    async with aiohttp.ClientSession() as http:
        api = Client(http, port)
        await api.healthy(agent)
        with sqlite3.connect(tmp_path / "state" / "hb2r.db", timeout=30) as database:
            database.execute(
                "INSERT INTO hosts (name, version, handbrake_version, libraries, running_jobs, last_seen)"
                " VALUES ('desktop', '1.3.9', NULL, '[\"tv\"]', 0, ?)",
                (LONG_AGO,),
            )

        watched = await open_page(browser, api.base)
        page = watched.page
        await log_in(page, "viewer", VIEWER_PASSWORD)

        await expect(page.locator("#host")).to_have_text("nas-1")
        await expect(page.locator("#hosts li")).to_have_count(2, timeout=15 * MS)
        await expect(page.locator("#hosts-count")).to_have_text("(2, 1 late)")
        nas = page.locator("#hosts li[data-host='nas-1']")
        await expect(nas.locator(".badge")).to_have_text("plans")
        await expect(nas).to_have_attribute("data-late", "false")
        await expect(nas.locator(".meta")).to_contain_text("libraries: tv")
        desktop = page.locator("#hosts li[data-host=desktop]")
        await expect(desktop).to_have_attribute("data-late", "true")
        await expect(desktop.locator(".why")).to_have_text(f"late: last seen {LONG_AGO}")
        assert await desktop.locator(".badge").count() == 0

        async def degraded() -> dict[str, Any] | None:  # /health keeps its checks for a second
            status, body = await api.get("/health")
            return body if status == 200 and body["status"] == "degraded" else None

        health = await wait_for_async(degraded, what="/health degraded", agent=agent, deadline=10.0)
        assert any(problem.startswith("host desktop not seen for 3 leases") for problem in health["problems"])
        assert health["leader"] == {"host": "nas-1", "epoch": 1}
        assert watched.errors == [] and watched.dialogs == []
        await watched.context.close()
    assert agent.stop() == 0, agent.log_tail()
