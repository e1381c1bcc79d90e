"""examples/compose.yaml keeps the issue's hardening: a change that drops one fails here (no compose on these hosts)."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "examples/compose.yaml"


def test_the_compose_example_runs_the_agent_hardened() -> None:
    service = yaml.safe_load(COMPOSE.read_text())["services"]["hb2r"]

    media = [volume for volume in service["volumes"] if ":/media/" in volume]
    assert media and all(volume.endswith(":ro") for volume in media)
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert set(service["cap_add"]) <= {"CHOWN", "SETUID", "SETGID"}
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["cpus"] and service["mem_limit"]
    assert service["healthcheck"]["test"]
    assert service["restart"] == "unless-stopped"
    assert all(str(port).startswith("127.0.0.1:") for port in service["ports"])
