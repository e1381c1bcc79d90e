"""The effective config as YAML, with secrets redacted, for `hb2r validate --show`."""

from __future__ import annotations

from typing import Any

import yaml

from agent.config.models import Config

REDACTED = "<redacted>"


def effective_yaml(config: Config) -> str:
    """Return the config after expansion and defaults, password hashes replaced by <redacted>."""
    data: dict[str, Any] = config.model_dump(mode="json")
    for user in data.get("users", []):
        user["password_hash"] = REDACTED
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
