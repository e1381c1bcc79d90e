"""The effective config, with secrets redacted, for `hb2r validate --show` and GET /api/config."""

from __future__ import annotations

from typing import Any

import yaml

from agent.config.models import Config
from agent.config.store_url import redact_url
from agent.notify.deliver import scheme_of

REDACTED = "<redacted>"


def effective_yaml(config: Config) -> str:
    """Return the config after expansion and defaults as YAML, secrets replaced by <redacted>."""
    return yaml.safe_dump(effective_data(config), sort_keys=False, allow_unicode=True)


def effective_data(config: Config) -> dict[str, Any]:
    """Return the config as plain data, password hashes, the JWT secret, a store password and notify URLs redacted."""
    data: dict[str, Any] = config.model_dump(mode="json")
    for user in data.get("users", []):
        user["password_hash"] = REDACTED
    if data.get("auth", {}).get("jwt_secret"):
        data["auth"]["jwt_secret"] = REDACTED
    if "store" in data:
        data["store"]["url"] = redact_url(data["store"]["url"])
    for target in data.get("notify", []):  # an Apprise URL is a secret whole (a topic, a webhook token)
        target["url"] = f"{scheme_of(target['url'])}://{REDACTED}"
    return data
