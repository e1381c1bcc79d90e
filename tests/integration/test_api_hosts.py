"""The hosts sharing the store, seen through a real agent's API: /api/hosts, /health, /api/status,
/metrics, and which host runs each job in /api/jobs.

A host that stopped reporting long ago is made by setting its row's `last_seen` back: what a
host dead for hours leaves behind, without waiting hours (or 3 leases) in the test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agent.api import openapi as openapi_module
from agent.store.hosts import HostReport
from tests.support.api import Api
from tests.support.api_calls import add_job, get_health, get_status, scrape

LONG_AGO = "2024-05-01T12:00:00.000000+00:00"
LEASE = timedelta(seconds=30)


def report_hosts(api: Api) -> None:
    store = api.context.state.store
    store.report_host(HostReport("nas-1", "1.4.0", "1.6.1", ("movies", "tv"), 1))
    store.report_host(HostReport("desktop", "1.3.9", None, ("tv",), 0))
    store.database.execute("UPDATE hosts SET last_seen = ? WHERE name = 'desktop'", (LONG_AGO,))
    assert store.take_or_renew_leadership("nas-1", lease=LEASE) is not None


async def get_hosts(api: Api, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    response = await api.client.get("/api/hosts", headers=headers if headers is not None else await api.viewer())
    return response.status, dict(await response.json())


async def test_hosts_lists_every_host_with_what_it_reported_and_which_is_late_or_leads(api: Api) -> None:
    report_hosts(api)

    status, body = await get_hosts(api)

    assert status == 200
    assert [host["name"] for host in body["hosts"]] == ["desktop", "nas-1"]
    desktop, nas = body["hosts"]
    assert desktop == {
        "name": "desktop",
        "version": "1.3.9",
        "handbrake_version": None,
        "libraries": ["tv"],
        "running_jobs": 0,
        "last_seen": LONG_AGO,
        "seen_seconds_ago": desktop["seen_seconds_ago"],
        "late": True,
        "leader": False,
    }
    assert desktop["seen_seconds_ago"] > 3600
    assert (nas["late"], nas["leader"], nas["libraries"], nas["handbrake_version"]) == (
        False,
        True,
        ["movies", "tv"],
        "1.6.1",
    )
    assert body["leader"]["host"] == "nas-1" and body["leader"]["epoch"] == 1
    assert body["late_after_seconds"] == 90  # 3 leases of the default 30 s
    schema = openapi_module.document()["components"]["schemas"]["Host"]
    assert set(nas) == set(schema["properties"]) == set(schema["required"])


async def test_hosts_needs_a_token(api: Api) -> None:
    status, body = await get_hosts(api, headers={})
    assert status == 401, body


async def test_health_is_degraded_naming_a_host_not_seen_for_3_leases_and_shows_the_leader(api: Api) -> None:
    status, body = await get_health(api)
    assert (status, body["status"], body["leader"]) == (200, "healthy", None)

    report_hosts(api)
    status, body = await get_health(api)

    assert status == 200 and body["status"] == "degraded"
    assert body["problems"] == [f"host desktop not seen for 3 leases (90 s): last seen {LONG_AGO}"]
    assert body["leader"] == {"host": "nas-1", "epoch": 1}
    assert set(body) <= set(openapi_module.document()["components"]["schemas"]["Health"]["properties"])


async def test_status_names_this_host_and_the_leader(api: Api) -> None:
    report_hosts(api)

    body = await get_status(api)

    assert body["host"] == api.context.state.config.host.name
    assert body["leader"] == {"host": "nas-1", "epoch": 1}


async def test_jobs_show_the_host_running_each(api: Api) -> None:
    add_job(api, "first.mkv")
    add_job(api, "second.mkv")
    claim = api.context.state.store.claim("desktop", libraries=["tv"], lease=LEASE, library_order=["tv"])
    assert claim is not None and claim.job.rel_path == "first.mkv"

    response = await api.client.get("/api/jobs", headers=await api.viewer())
    listed = {job["path"]: job for job in (await response.json())["jobs"]}
    detail = await (await api.client.get(f"/api/jobs/{claim.job.id}", headers=await api.viewer())).json()

    assert (listed["first.mkv"]["host"], detail["host"]) == ("desktop", "desktop")
    assert listed["second.mkv"]["host"] is None


async def test_metrics_count_hosts_seen_late_their_running_jobs_and_the_leader(api: Api) -> None:
    report_hosts(api)
    before = datetime.now(UTC)

    samples = await scrape(api)

    assert samples["hb2r_hosts_seen"] == {(("host", "desktop"),): 0.0, (("host", "nas-1"),): 1.0}
    assert samples["hb2r_hosts_late"] == {(): 1.0}
    seconds = samples["hb2r_host_last_seen_seconds"]
    assert seconds[(("host", "nas-1"),)] < 60
    assert seconds[(("host", "desktop"),)] >= (before - datetime.fromisoformat(LONG_AGO)).total_seconds() - 60
    assert samples["hb2r_host_running_jobs"] == {(("host", "desktop"),): 0.0, (("host", "nas-1"),): 1.0}
    assert samples["hb2r_leader_epoch"] == {(("host", "nas-1"),): 1.0}
