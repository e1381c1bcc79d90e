"""The tests' own layout: a test module imports helpers from tests/support, never from another test
module (importing one runs its module-level set-up, drags its fixtures along, and ties two files that
change for different reasons)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[str]:
    """Return the last dotted part of every module path imports (at any depth, `from . import x` as x)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name.rsplit(".", 1)[-1] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.module:
                found.append(node.module.rsplit(".", 1)[-1])
            else:
                found += [alias.name for alias in node.names]
    return found


def imports_of_test_modules(tests: Path) -> list[str]:
    """Return 'FILE imports MODULE' for each import, in any file below tests, of a test_*.py there."""
    test_modules = {path.stem for path in tests.rglob("test_*.py")}
    return [
        f"{path.relative_to(tests)} imports {module}"
        for path in sorted(tests.rglob("*.py"))
        for module in imported_modules(path)
        if module in test_modules
    ]


def test_no_test_module_imports_another_test_module() -> None:
    offenders = imports_of_test_modules(TESTS)
    assert offenders == [], "move what they share into tests/support/:\n" + "\n".join(offenders)


def test_the_check_sees_each_way_of_importing_a_test_module(tmp_path: Path) -> None:
    for name in ("test_run", "test_api_e2e", "test_plan", "test_routes"):
        (tmp_path / f"{name}.py").write_text("")
    (tmp_path / "test_example.py").write_text(
        "import test_run\nfrom test_api_e2e import Client\nfrom .test_plan import NOW\n"
        "from tests.e2e.test_run import copy\nfrom . import test_routes\nfrom tests.support.ports import free_port\n"
        "from aiohttp.test_utils import TestClient\n"
    )
    assert imports_of_test_modules(tmp_path) == [
        f"test_example.py imports {name}"
        for name in ("test_run", "test_api_e2e", "test_plan", "test_run", "test_routes")
    ]
