"""A host whose link to PostgreSQL is cut must learn it in seconds, not after TCP's many minutes.

An established connection on a cut link sends a statement and waits for an answer that never
comes; without keepalives and a TCP user timeout, libpq waits for the kernel's retransmissions
(about 15 minutes), and meanwhile the agent believes it still holds its encodes. The statement
must fail within the store's bound instead, so the host treats its claims as lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.multihost import Network, SharedStore

# Inside the host's namespace: connect as the agent does, say so, wait for the cut, then time one statement.
STATEMENT_AFTER_CUT = """
import json, sys, time
from pathlib import Path
from agent.store.postgres import connect_postgres
from agent.store.sql import StoreError
Path({password_file!r}).write_text({password!r})
Path({password_file!r}).chmod(0o600)
database = connect_postgres({url!r}, password_file=Path({password_file!r}))
database.execute("SELECT 1").fetchone()
print("connected", flush=True)
sys.stdin.readline()
began = time.monotonic()
try:
    database.execute("SELECT 1").fetchone()
    outcome = "answered"
except StoreError as error:
    outcome = "failed: " + str(error)
print(json.dumps({{"outcome": outcome, "seconds": time.monotonic() - began}}), flush=True)
"""


def test_a_statement_on_a_cut_link_fails_within_seconds(
    network: Network, shared_store: SharedStore, tmp_path: Path
) -> None:
    network.add("nas1")
    code = STATEMENT_AFTER_CUT.format(
        url=shared_store.url, password=shared_store.password, password_file=str(tmp_path / "nas1.password")
    )
    process = subprocess.Popen(
        network.command("nas1", [sys.executable, "-c", code]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().strip() == "connected", process.stderr.read() if process.stderr else ""
        network.cut("nas1")
        process.stdin.write("go\n")
        process.stdin.flush()
        # Without the bound it would hang for many minutes; 60 s is the test's own deadline.
        out, err = process.communicate(timeout=60)
    finally:
        network.restore("nas1")
        if process.poll() is None:
            process.kill()
            process.wait()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["outcome"].startswith("failed: "), out + err
    assert result["seconds"] < 30, result
