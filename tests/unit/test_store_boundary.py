"""Nothing outside agent/store/ reaches a database driver or writes SQL: the store protocol is the only way in.

An AST check of every module of agent/, so that a new `import sqlite3` (or psycopg) in the
engine, the API or the CLI fails here rather than quietly tying that code to one database.
"""

from __future__ import annotations

import ast
import re
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


# A statement written as text: what a module would pass to a cursor. Upper case, as all of hb2r's SQL is.
SQL_TEXT = re.compile(
    r"^\s*(SELECT\s.+\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|"
    r"(CREATE|ALTER|DROP)\s+(TABLE|INDEX|TRIGGER|VIEW)\s|PRAGMA\s|BEGIN\b|COMMIT\b|ROLLBACK\b)",
    re.DOTALL,
)
CURSOR_METHODS = {"execute", "executemany", "executescript"}


def sql_written(source: str) -> list[str]:
    """Given a module's text, return each call of a cursor method and each SQL statement in it."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CURSOR_METHODS:
            found.append(f"line {node.lineno}: .{node.func.attr}(")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.match(node.value):
            found.append(f"line {node.lineno}: {node.value.strip().splitlines()[0][:60]}")
    return found


def test_no_module_outside_the_store_writes_sql() -> None:
    offenders = {
        str(path.relative_to(AGENT.parent)): sql_written(path.read_text())
        for path in sorted(AGENT.rglob("*.py"))
        if "store" not in path.relative_to(AGENT).parts[:1]
    }

    assert {path: found for path, found in offenders.items() if found} == {}


def test_the_sql_check_sees_a_cursor_call_and_a_statement_but_not_a_word() -> None:
    source = (
        'UPDATE = "update"\n'
        'HELP = "Select the files to update"\n'
        "store.database.execute(query)\n"
        'QUERY = """\n    SELECT name FROM users WHERE name = ?\n"""\n'
        'connection.executemany("UPDATE jobs SET state = ?", rows)\n'
    )

    assert sql_written(source) == [
        "line 3: .execute(",
        "line 4: SELECT name FROM users WHERE name = ?",
        "line 7: .executemany(",
        "line 7: UPDATE jobs SET state = ?",
    ]
