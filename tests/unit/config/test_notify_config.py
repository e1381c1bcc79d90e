"""The `notify:` list of the config: what it accepts, what each mistake says, and that its URLs stay secret."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from agent.config import ConfigError, load_config
from agent.config.models import Config
from agent.config.show import effective_data, effective_yaml

BASE = "version: 1\npaths: {archive: archive, state_dir: state}\n"
SECRET = "tk_5ecret7opic"


def load(tmp_path: Path, notify: str, environ: dict[str, str] | None = None) -> Config:
    (tmp_path / "archive").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(BASE + notify)
    return load_config(path, environ=environ or {}).config


def problems(tmp_path: Path, notify: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, notify)
    return [str(problem) for problem in raised.value.problems]


def test_a_target_takes_its_url_from_the_environment_and_defaults_to_every_event(tmp_path: Path) -> None:
    config = load(tmp_path, 'notify:\n  - url: "${NTFY_URL}"\n', {"NTFY_URL": f"ntfys://ntfy.sh/{SECRET}"})

    (target,) = config.notify
    assert target.url == f"ntfys://ntfy.sh/{SECRET}"
    assert target.events == ()  # every event
    assert target.min_interval == timedelta(minutes=10)
    assert (target.attempts, target.backoff) == (4, timedelta(seconds=5))


def test_events_and_min_interval_as_written(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "notify:\n  - url: json://127.0.0.1:8000/hook\n    events: [job_dead, queue_drained]\n    min_interval: 30s\n",
    )

    (target,) = config.notify
    assert target.events == ("job_dead", "queue_drained")
    assert target.min_interval == timedelta(seconds=30)


def test_an_unknown_event_is_named_with_the_known_ones(tmp_path: Path) -> None:
    found = problems(tmp_path, "notify:\n  - url: json://127.0.0.1:8000/hook\n    events: [job_dead, job_died]\n")

    assert len(found) == 1
    assert found[0].endswith(
        "at 'notify[0].events': unknown event 'job_died' (known: job_dead, library_paused, library_error, "
        "archive_low_space, encode_stalled, queue_drained, host_lost, started_after_crash)"
    )


def test_an_empty_events_list_is_refused(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, "notify:\n  - url: json://127.0.0.1:8000/hook\n    events: []\n")

    assert "at 'notify[0].events': events is empty: leave the key out for every event" in found


@pytest.mark.parametrize(
    "url, says",
    [
        pytest.param(
            f"nosuchservice://user:{SECRET}@host/path",
            "this nosuchservice:// URL is not one Apprise",
            id="unknown-scheme",
        ),
        pytest.param(
            f"json://:{SECRET}@/", "this json:// URL is not one Apprise", id="malformed-url-of-a-known-service"
        ),
        pytest.param(f"{SECRET}", "this is not an Apprise URL", id="no-scheme-at-all"),
        pytest.param("", "the URL is empty", id="empty"),
    ],
)
def test_a_url_apprise_cannot_use_is_an_error_naming_the_target_not_the_secret(
    tmp_path: Path, url: str, says: str
) -> None:
    found = problems(tmp_path, f'notify:\n  - url: json://127.0.0.1:8000/ok\n  - url: "{url}"\n')

    assert len(found) == 1
    assert "at 'notify[1].url': " in found[0]
    assert says in found[0]
    assert SECRET not in found[0]


def test_shown_config_hides_each_url_but_its_scheme(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f"notify:\n  - url: ntfys://ntfy.sh/{SECRET}\n  - url: json://user:{SECRET}@127.0.0.1:8000/hook\n",
    )

    shown = effective_yaml(config)

    assert SECRET not in shown
    assert [target["url"] for target in yaml.safe_load(shown)["notify"]] == ["ntfys://<redacted>", "json://<redacted>"]
    assert SECRET not in repr(effective_data(config))
    assert SECRET not in repr(config)
