"""A real agent's API for tests: real config file, real SQLite (or the PostgreSQL store.url
names), a real Dispatcher (not ticking), served by aiohttp's test server on loopback.

Users: `admin` (role admin, password ADMIN_PASSWORD) and `viewer` (role user,
password VIEWER_PASSWORD); hashes made with bcrypt cost 4 to keep tests quick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from agent import logs
from agent.api.context import ApiContext, assemble
from agent.auth import jwt_secret, user_sync
from agent.config import load_config
from agent.config.models import Config
from agent.engine import AgentState
from agent.gate import Sample
from agent.passwords import hash_password
from agent.resources import Sampler
from agent.store.choose import store_for
from tests.support.ports import free_port

ADMIN_PASSWORD = "admin-password-1"
VIEWER_PASSWORD = "viewer-password-2"
ADMIN_HASH = hash_password(ADMIN_PASSWORD, rounds=4)
VIEWER_HASH = hash_password(VIEWER_PASSWORD, rounds=4)
GIB = 1024**3


class FixedSampler:
    """A host sample chosen by the test. The real Sampler cannot be made to report, say, 95 % CPU
    on demand; tests of the gate's effect on /health use this and say so."""

    def __init__(self, sample: Sample) -> None:
        self.value = sample

    def sample(self) -> Sample:
        return self.value


def write_config(
    root: Path,
    *,
    users: str | None = None,
    rate: str = "100/min",
    cors: str = "[]",
    extra: str = "",
    extra_server: str = "",
) -> Path:
    """Write a config with libraries tv and movies under root; return its path."""
    for folder in ("tv", "movies", "archive"):
        (root / folder).mkdir(exist_ok=True)
    if users is None:
        users = (
            f'  - {{name: admin, role: admin, password_hash: "{ADMIN_HASH}"}}\n'
            f'  - {{name: viewer, role: user, password_hash: "{VIEWER_HASH}"}}\n'
        )
    config = root / "config.yaml"
    server_extra = f", {extra_server}" if extra_server else ""
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries:\n"
        "  - {name: tv, source: tv, output: TV, preset: fast}\n"
        "  - {name: movies, source: movies, output: Movies, preset: fast}\n"
        "presets:\n"
        "  fast: {handbrake: 'Very Fast 480p30', container: mkv}\n"
        f"server: {{listen: '127.0.0.1:{free_port()}', cors_origins: {cors}{server_extra}}}\n"
        f"auth: {{jwt_secret_file: state/jwt.secret, bcrypt_rounds: 4, login_rate_limit: {rate}}}\n"
        + (f"users:\n{users}" if users.strip() else "users: []\n")
        + extra
    )
    return config


@dataclass
class Api:
    """An app under test: its context (the live agent state) and an HTTP client."""

    context: ApiContext
    client: TestClient[Any, Any]
    tokens: dict[str, str] = field(default_factory=dict)

    async def login(self, username: str, password: str) -> str:
        response = await self.client.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status == 200, await response.text()
        token = str((await response.json())["token"])
        self.tokens[username] = token
        return token

    async def admin(self) -> dict[str, str]:
        token = self.tokens.get("admin") or await self.login("admin", ADMIN_PASSWORD)
        return {"Authorization": f"Bearer {token}"}

    async def viewer(self) -> dict[str, str]:
        token = self.tokens.get("viewer") or await self.login("viewer", VIEWER_PASSWORD)
        return {"Authorization": f"Bearer {token}"}


def build_context(config_path: Path, *, sampler: Any = None, log: Any = None) -> ApiContext:
    """Return the API context of an agent on config_path, as `hb2r run` builds it (no passes run)."""
    config: Config = load_config(config_path).config
    state = AgentState(config=config, store=store_for(config), preset_hashes={})  # store.url: SQLite by default
    log = log or logs.get_logger("hb2r-test")
    user_sync.sync_users(state.store, config, now=datetime.now(UTC), log=log)
    scans: list[datetime] = []
    context = assemble(
        state,
        sampler=sampler or Sampler(config.paths.archive),
        secret=jwt_secret.load_secret(config.auth),
        request_scan=lambda: scans.append(datetime.now(UTC)),
        log=log,
        now=datetime.now(UTC),
    )
    context.scans = scans  # type: ignore[attr-defined]  # what POST /api/scan asked for
    return context
