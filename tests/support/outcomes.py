"""What an operator looks at after the agent ran: the archive, the jobs in the state database, checksums.

`root` is a test's folder as `tests.support.configs.write_config` lays it out (archive/, state/).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any


def jobs_by_state(root: Path) -> dict[str, list[str]]:
    """Return {state: [rel_path, ...]} from root/state/hb2r.db, read-only ({} before the agent has made
    it: the file appears a moment before its first migration has made the tables)."""
    database = root / "state" / "hb2r.db"
    if not database.exists():
        return {}
    with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as connection:
        try:
            rows = connection.execute("SELECT state, rel_path FROM jobs").fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return {}
            raise
    result: dict[str, list[str]] = {}
    for state, rel_path in rows:
        result.setdefault(state, []).append(rel_path)
    return result


def files_under(folder: Path) -> list[str]:
    """Return every file below folder, relative and sorted ([] if it does not exist)."""
    if not folder.exists():
        return []
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def archive_files(root: Path) -> list[str]:
    """Every file in root/archive, temp files included."""
    return files_under(root / "archive")


def published(root: Path) -> list[str]:
    """The outputs in root/archive, without the temp files of encodes under way."""
    return [name for name in archive_files(root) if not name.startswith(".hb2r-partial")]


def checksums(folder: Path) -> dict[str, str]:
    """Return {relative path: sha256} of every file below folder."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def copy(source: Path, target: Path) -> None:
    """Copy source to target, making target's folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())


def read_log(path: Path) -> list[dict[str, Any]]:
    """The JSON object lines of an agent's log (other lines, e.g. a traceback, are skipped)."""
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
