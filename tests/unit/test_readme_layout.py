"""The README's Layout names every module of `agent/` where it is, and nothing that is not there.

Whoever carries hb2r on finds a module through that list first; a list that omits modules or
places them wrongly sends them to the wrong file. The Layout is a code block under
`## Layout`: a line at column 0 ending in `/` opens a folder, and each indented line below it
begins with a module of that folder (`name.py`) and says what it owns.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = re.compile(r"^\s+(\S+\.py)\s")


def layout_block(readme: str) -> list[str]:
    """Return the lines of the code block under the README's `## Layout` heading."""
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1].splitlines()[1:]


def modules_named(lines: list[str]) -> list[str]:
    """Return the module paths the Layout names, as `folder/name.py`."""
    named: list[str] = []
    folder = ""
    for line in lines:
        if line and not line[0].isspace():
            folder = line.split()[0]
            continue
        match = MODULE.match(line)
        if match and folder.startswith("agent"):
            named.append(folder + match.group(1))
    return named


def agent_modules() -> set[str]:
    return {str(path.relative_to(ROOT)) for path in (ROOT / "agent").rglob("*.py") if path.name != "__init__.py"}


def test_the_layout_names_every_module_of_the_agent_in_its_own_folder() -> None:
    named = modules_named(layout_block((ROOT / "README.md").read_text()))
    assert sorted(agent_modules() - set(named)) == [], "modules the README's Layout leaves out"
    assert sorted(set(named) - agent_modules()) == [], "modules the README's Layout names that do not exist there"
    assert len(named) == len(set(named)), "a module named twice in the Layout"


def test_the_layout_reader_finds_a_missing_and_a_misplaced_module() -> None:
    lines = ["agent/", "  cli.py   the command line", "agent/store/", "  verify.py  misplaced"]
    named = modules_named(lines)
    assert named == ["agent/cli.py", "agent/store/verify.py"]
    assert "agent/verify.py" not in named


def test_every_module_opens_with_what_it_owns() -> None:
    silent = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "agent").rglob("*.py"))
        if len((ast.get_docstring(ast.parse(path.read_text())) or "").split()) < 4
    ]
    assert silent == [], "modules that do not open with a docstring saying what they own"
