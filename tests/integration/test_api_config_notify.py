"""GET /api/config shows each notify target by its scheme only: the URL (a topic, a token) is a secret."""

from __future__ import annotations

from .conftest import MakeApi

SECRET = "hb2r-t0pic-4f9c"


async def test_the_config_an_admin_reads_shows_notify_urls_redacted(make_api: MakeApi) -> None:
    api = await make_api(extra=f"notify:\n  - url: ntfys://ntfy.sh/{SECRET}\n    events: [job_dead]\n")

    response = await api.client.get("/api/config", headers=await api.admin())

    text = await response.text()
    assert response.status == 200
    assert SECRET not in text
    assert (await response.json())["config"]["notify"] == [
        {"url": "ntfys://<redacted>", "events": ["job_dead"], "min_interval": "10m", "attempts": 4, "backoff": "5s"}
    ]
