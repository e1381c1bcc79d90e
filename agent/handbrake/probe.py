"""Ask the HandBrakeCLI binary what it is."""

from __future__ import annotations

import re
import subprocess

_VERSION = re.compile(r"HandBrake (\S+)")


class HandBrakeUnavailable(Exception):
    """HandBrakeCLI cannot be run; the message says why."""


def handbrake_version(binary: str, *, timeout: float = 30) -> str:
    """Return HandBrakeCLI's version, e.g. '1.6.1'; raise HandBrakeUnavailable if it cannot tell."""
    try:
        finished = subprocess.run(  # noqa: S603 - argv list, no shell
            [binary, "--version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise HandBrakeUnavailable(f"{binary}: not found (install the handbrake-cli package)") from None
    except (OSError, subprocess.TimeoutExpired) as error:
        raise HandBrakeUnavailable(f"{binary}: cannot run: {error}") from None
    match = _VERSION.search(finished.stdout + finished.stderr)
    if not match:
        raise HandBrakeUnavailable(f"{binary} --version printed no version (exit {finished.returncode})")
    return match.group(1)
