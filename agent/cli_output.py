"""What every `hb2r` command ends with: its exit code, and errors and warnings on stderr.

Exit codes follow Terraform's plan: 0 done (or in sync), 1 error, 2 changes pending (`hb2r plan`).
An error is one line `error: ...` that says what was not done; a warning is `warning: ...`,
with control characters in it escaped (a file name must not move the terminal's cursor).
"""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PENDING = 2


def fail(message: object) -> int:
    """Print `error: message` on stderr; return EXIT_ERROR."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def warn(message: str) -> None:
    """Print `warning: message` on stderr, control characters escaped."""
    from agent.quoting import escaped

    print(f"warning: {escaped(message)}", file=sys.stderr)
