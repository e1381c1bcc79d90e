"""hb2r's container image (packaging/Containerfile), run with real podman on a real library of clips.

How podman runs here (see tests/container/podman.py): rootful, the `runc` runtime with the cgroupfs manager
(`crun` fails on these hosts' hybrid cgroup layout), `default_ulimits = []` (raising rlimits is not permitted),
host networking (the agent listens on 127.0.0.1 and a free port), all through a containers.conf named by
`CONTAINERS_CONF`. Podman's periodic health checks need systemd timers, which these hosts lack (podman logs
that it cannot add them): the test runs the image's check itself with `podman healthcheck run`. Each container
runs hardened as examples/compose.yaml runs it: read-only root, every capability dropped but the three the
entrypoint needs to give /state to PUID:PGID and drop to them, and no-new-privileges.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jwt
import pytest

from tests.container.podman import podman
from tests.support.clips import make_clip
from tests.support.ports import free_port

PRESET = "Very Fast 480p30"
PUID, PGID = 1234, 2345
JWT_SECRET = "a-container-secret-of-at-least-32-bytes!"
HARDENED = (
    "--read-only",
    "--cap-drop=ALL",
    "--cap-add=CHOWN,SETUID,SETGID",
    "--security-opt=no-new-privileges",
)
T = TypeVar("T")


def poll(what: str, probe: Callable[[], T | None], *, deadline: float = 60.0, logs: Callable[[], str]) -> T:
    """Call probe until it returns something other than None; fail with the container's log after deadline s."""
    until = time.monotonic() + deadline
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > until:
            pytest.fail(f"timed out waiting for {what}; container log:\n{logs()[-6000:]}")
        time.sleep(0.2)


@dataclass
class Site:
    """A host's folders for one container: the media (mounted read-only), the archive, the state, the config."""

    root: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        for folder in (self.media, self.archive, self.state, self.config_dir):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def media(self) -> Path:
        return self.root / "media/tv"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    def write_config(self, *, max_jobs: str = "1") -> None:
        (self.config_dir / "config.yaml").write_text(
            f"""version: 1
paths: {{archive: /archive, state_dir: /state}}
libraries:
  - {{name: tv, source: /media/tv, output: TV, preset: tv, stable_after: 1s}}
presets:
  tv: {{handbrake: "{PRESET}", container: mkv}}
scan: {{interval: 1s}}
limits: {{cpu_percent: 100, memory_percent: 100, min_free_memory: 64MiB, min_free_disk: 1MiB, max_jobs: {max_jobs}}}
retry: {{attempts: 2, backoff: 1s, max_backoff: 2s}}
auth: {{jwt_secret_file: /state/jwt.secret, bcrypt_rounds: 4}}
server: {{listen: "127.0.0.1:{self.port}"}}
"""
        )

    def sources(self) -> dict[str, str]:
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(self.media.iterdir())}


class Container:
    """One `podman run -d` of the image, removed when the test ends."""

    def __init__(self, image: str, site: Site, *, options: tuple[str, ...] = (), with_config: bool = True) -> None:
        self.name = f"hb2r-test-{uuid.uuid4().hex[:10]}"
        self.site = site
        mounts = [
            f"--volume={site.media}:/media/tv:ro",
            f"--volume={site.archive}:/archive",
            f"--volume={site.state}:/state",
        ]
        if with_config:
            mounts.append(f"--volume={site.config_dir}:/config:ro")
        podman(
            "run",
            "--detach",
            f"--name={self.name}",
            *HARDENED,
            f"--env=PUID={PUID}",
            f"--env=PGID={PGID}",
            f"--env=HB2R_PORT={site.port}",
            *mounts,
            *options,
            image,
        )

    def logs(self) -> str:
        return podman("logs", self.name, check=False)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.site.port}{path}"

    def get(self, path: str, *, token: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.url(path))  # noqa: S310 (http://127.0.0.1 only)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None

    def wait_healthy(self) -> dict[str, Any]:
        def healthy() -> dict[str, Any] | None:
            status, body = self.get("/health")
            return body if status == 200 else None

        return poll("GET /health 200", healthy, logs=self.logs)

    def login(self) -> str:
        password = poll(
            "the initial admin password",
            lambda: (
                (self.site.state / "initial-admin-password").read_text().strip()
                if (self.site.state / "initial-admin-password").is_file()
                else None
            ),
            logs=self.logs,
        )
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            self.url("/api/auth/login"),
            data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return str(json.loads(response.read())["token"])

    def system(self, token: str) -> dict[str, Any]:
        status, body = self.get("/api/system", token=token)
        assert status == 200, body
        return dict(body)

    def wait_for_outputs(self, names: list[str], *, deadline: float = 90.0) -> list[Path]:
        outputs = [self.site.archive / "TV" / name for name in names]
        poll(
            f"{names} in the archive",
            lambda: True if all(p.is_file() for p in outputs) else None,
            deadline=deadline,
            logs=self.logs,
        )
        return outputs

    def state(self) -> dict[str, Any]:
        return dict(json.loads(podman("inspect", self.name, "--format", "{{json .State}}")))

    def remove(self) -> None:
        podman("rm", "--force", "--time=0", self.name, check=False)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    site = Site(tmp_path)
    os.chown(site.archive, PUID, PGID)  # the archive belongs to the user hb2r runs as (README "Container")
    return site


@pytest.fixture
def run(image: str) -> Iterator[Callable[..., Container]]:
    started: list[Container] = []

    def start(site: Site, **kwargs: Any) -> Container:
        container = Container(image, site, **kwargs)
        started.append(container)
        return container

    yield start
    for container in started:
        container.remove()


def test_the_container_encodes_the_read_only_library_into_the_archive_as_puid_pgid(
    site: Site, run: Callable[..., Container]
) -> None:
    make_clip(site.media / "one.mp4", seconds=2)
    make_clip(site.media / "two.mp4", seconds=2)
    before = site.sources()
    site.write_config()
    container = run(site)

    health = container.wait_healthy()
    outputs = container.wait_for_outputs(["one.mkv", "two.mkv"])

    assert health["status"] == "healthy", health
    for output in outputs:
        assert (output.stat().st_uid, output.stat().st_gid) == (PUID, PGID)
        assert output.stat().st_size > 0
    # Nothing in the container runs as root, PID 1 (tini) included (the probe itself runs as PUID:PGID too).
    processes = podman(
        "exec", f"--user={PUID}:{PGID}", container.name, "sh", "-c", "grep -E '^(Name|Uid|Gid):' /proc/[0-9]*/status"
    )
    uids = {int(line.split()[1]) for line in processes.splitlines() if "Uid:" in line}
    assert uids == {PUID}, processes
    # The health check the image declares passes, through the image's own Python.
    assert subprocess_ok(["healthcheck", "run", container.name])
    # The media mount is read-only to the container, and hb2r left the sources as they were.
    # (podman exec runs as root by default: not even root inside may write there)
    refused = podman("exec", container.name, "sh", "-c", "{ echo x > /media/tv/new.mp4; } 2>&1; echo $?", check=False)
    assert "Read-only file system" in refused, refused
    assert not (site.media / "new.mp4").exists()
    assert site.sources() == before
    # No compiler in the final image.
    found = podman("exec", container.name, "sh", "-c", "command -v gcc cc c++ x86_64-linux-gnu-gcc || true")
    assert found.strip() == ""


def subprocess_ok(arguments: list[str]) -> bool:
    try:
        podman(*arguments)
    except Exception as error:  # the failure's output explains it
        pytest.fail(str(error))
    return True


def test_podman_stop_ends_an_encode_cleanly_and_a_restart_carries_on(site: Site, run: Callable[..., Container]) -> None:
    make_clip(site.media / "long.mp4", seconds=45, size="640x360")
    site.write_config()
    container = run(site)
    partial = site.archive / ".hb2r-partial"
    poll(
        "an encode writing its temp file",
        lambda: True if partial.is_dir() and any(p.stat().st_size > 0 for p in partial.iterdir()) else None,
        logs=container.logs,
    )

    started = time.monotonic()
    podman("stop", container.name, timeout=30)
    took = time.monotonic() - started

    state = container.state()
    assert state["ExitCode"] == 0, container.logs()[-4000:]
    assert took < 10, f"podman stop took {took:.1f} s"
    assert list(partial.iterdir()) == []
    assert not (site.archive / "TV/long.mkv").exists()

    podman("start", container.name)
    (output,) = container.wait_for_outputs(["long.mkv"], deadline=180)
    assert output.stat().st_size > 0
    assert list(partial.iterdir()) == []


def test_podman_kill_hup_applies_a_config_change(site: Site, run: Callable[..., Container]) -> None:
    site.write_config(max_jobs="1")
    container = run(site)
    container.wait_healthy()
    token = container.login()
    assert container.system(token)["max_jobs"] == 1

    site.write_config(max_jobs="3")
    podman("kill", "--signal=HUP", container.name)

    poll(
        "max_jobs 3 after the reload",
        lambda: True if container.system(token)["max_jobs"] == 3 else None,
        deadline=30,
        logs=container.logs,
    )
    assert container.state()["Running"]
    # README "Container": a backup through exec, as the agent's user, while it runs.
    podman("exec", f"--user={PUID}:{PGID}", container.name, "hb2r", "backup", "--to", "/state/hb2r-backup.db")
    with sqlite3.connect(f"file:{site.state / 'hb2r-backup.db'}?mode=ro", uri=True) as db:
        assert db.execute("SELECT count(*) FROM users WHERE name = 'admin'").fetchone() == (1,)


def test_limited_to_one_cpu_and_1_gib_the_gate_sees_the_containers_share(
    site: Site, run: Callable[..., Container]
) -> None:
    # The image's own config, driven by the seed's environment names; max_jobs stays `auto`.
    make_clip(site.media / "one.mp4", seconds=2)
    container = run(
        site,
        with_config=False,
        options=(
            "--cpus=1",
            "--memory=1g",
            "--env=HB2R_LISTEN_ADDRESS=127.0.0.1",
            f"--env=TV_PRESET={PRESET}",
            "--env=STABLE_AFTER=1s",
            "--env=SCAN_INTERVAL=2s",
            "--env=CPU_LIMIT=95",
            "--env=MEMORY_LIMIT=90",
            "--env=MIN_FREE_MEMORY=64MiB",
            "--env=MIN_FREE_DISK=1MiB",
            "--env=BCRYPT_ROUNDS=4",
            "--env=SESSION_TIMEOUT_MINUTES=5",
            f"--env=JWT_SECRET_KEY={JWT_SECRET}",
        ),
    )
    container.wait_healthy()
    token = container.login()
    system = container.system(token)

    assert system["max_jobs"] == 1, system  # the host has more cores; the container has one CPU
    assert system["cpu"]["cores"] == 1
    assert system["memory"]["available_bytes"] <= 1024**3
    assert (system["cpu"]["limit_percent"], system["memory"]["limit_percent"]) == (95, 90)
    container.wait_for_outputs(["one.mkv"])
    # JWT_SECRET_KEY signs the tokens, SESSION_TIMEOUT_MINUTES sets their lifetime, BCRYPT_ROUNDS the hashes' cost.
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["exp"] - claims["iat"] == 300
    with sqlite3.connect(f"file:{site.state / 'hb2r.db'}?mode=ro", uri=True) as db:
        (password_hash,) = db.execute("SELECT password_hash FROM users WHERE name = 'admin'").fetchone()
    assert password_hash.startswith("$2b$04$")


def test_the_seeds_environment_names_configure_the_images_config(image: str) -> None:
    environment = {
        "TV_SOURCE": "/media/shows",
        "MOVIES_SOURCE": "/media/films",
        "ARCHIVE_DESTINATION": "/sync/archive",
        "CPU_LIMIT": "70",
        "MEMORY_LIMIT": "60",
        "MAX_CONCURRENT_JOBS": "3",
        "JWT_SECRET_KEY": JWT_SECRET,
        "BCRYPT_ROUNDS": "10",
        "SESSION_TIMEOUT_MINUTES": "15",
    }
    script = (
        "from pathlib import Path; from agent.config.load import load_config; "
        "print(load_config(Path('/config/config.yaml')).config.model_dump_json())"
    )
    output = podman(
        "run", "--rm", *HARDENED, *(f"--env={k}={v}" for k, v in environment.items()), image, "python", "-c", script
    )
    config = json.loads(output.strip().splitlines()[-1])

    assert [library["source"] for library in config["libraries"]] == ["/media/shows", "/media/films"]
    assert config["paths"]["archive"] == "/sync/archive"
    assert (config["limits"]["cpu_percent"], config["limits"]["memory_percent"]) == (70, 60)
    assert config["limits"]["max_jobs"] == 3
    assert config["auth"]["jwt_secret"] == JWT_SECRET
    assert config["auth"]["bcrypt_rounds"] == 10
    assert config["auth"]["session_timeout"] == "15m"
