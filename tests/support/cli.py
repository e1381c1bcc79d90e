"""`hb2r ARGS` run as a command, as an operator types it, for the tests of the command line."""

from __future__ import annotations

import subprocess
import sys

from tests.support.agent_process import REPO, agent_environment


def hb2r(
    *arguments: str,
    stdin: str | None = None,
    environment: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `hb2r ARGUMENTS` from the checkout (environment: this one without HB2R_* unless given) and
    return its result; fail if it printed a traceback (every error must be a message)."""
    finished = subprocess.run(
        [sys.executable, "-m", "agent", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment if environment is not None else agent_environment(),
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in finished.stdout + finished.stderr, finished.stdout + finished.stderr
    return finished
