"""Nothing outside agent/store/ reaches a database driver: the store protocol is the only way in.

An AST check of every module of agent/, so that a new `import sqlite3` (or psycopg) in the
engine, the API or the CLI fails here rather than quietly tying that code to one database.
"""

from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"
DRIVERS = {"sqlite3", "psycopg", "psycopg2", "psycopg_pool"}


def driver_imports(source: str) -> list[str]:
    """Given a module's text, return the database drivers it imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [name for name in names if name.split(".")[0] in DRIVERS]
    return found


def test_no_module_outside_the_store_imports_a_database_driver() -> None:
    offenders = {
        str(path.relative_to(AGENT.parent)): driver_imports(path.read_text())
        for path in sorted(AGENT.rglob("*.py"))
        if "store" not in path.relative_to(AGENT).parts[:1]
    }

    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_check_sees_every_form_of_import() -> None:
    source = "import os\nimport sqlite3\nfrom psycopg import sql\nimport psycopg.rows as rows\nfrom . import sqlite3\n"

    assert driver_imports(source) == ["sqlite3", "psycopg", "psycopg.rows"]
