"""Build the wheelhouse a deploy ships: hb2r's wheel and every dependency as a wheel, for the
target host's Python and machine, so the host installs with no compiler and no index.

Run on the control machine by deploy.yml. Prints one JSON object:
{"build_id", "version", "wheelhouse", "wheels"}. The build id is a hash of the source (the
`agent` package and pyproject.toml) and the target, so an unchanged checkout reuses its
wheelhouse and the host its release: a second deploy changes nothing.

Dependencies come from the package index as binary wheels for the target (`pip download
--only-binary=:all: --python-version --platform`); hb2r itself is pure Python and built here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MANYLINUX = ("manylinux_2_28", "manylinux_2_17", "manylinux2014", "manylinux_2_5", "manylinux1")


def source_hash(source: Path) -> str:
    digest = hashlib.sha256()
    files = sorted([*source.joinpath("agent").rglob("*.py"), source / "pyproject.toml", source / "README.md"])
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(source)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def version_of(source: Path) -> str:
    text = (source / "agent" / "__init__.py").read_text()
    match = re.search(r'__version__ = "([^"]+)"', text)
    if not match:
        raise SystemExit(f"error: no __version__ in {source / 'agent' / '__init__.py'}")
    return match.group(1)


def build(source: Path, *, python_version: str, machine: str, cache: Path) -> dict[str, object]:
    version = version_of(source)
    build_id = hashlib.sha256(f"{source_hash(source)}|{python_version}|{machine}".encode()).hexdigest()[:12]
    wheelhouse = cache / build_id
    if not (wheelhouse / ".complete").exists():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{build_id}-", dir=cache))
        try:
            pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
            subprocess.run([*pip, "wheel", "--no-deps", "-w", str(staging), str(source)], check=True)
            (own,) = staging.glob("hb2r-*.whl")
            platforms = [f"--platform={tag}_{machine}" for tag in MANYLINUX]
            subprocess.run(
                [
                    *pip,
                    "download",
                    "--only-binary=:all:",
                    f"--python-version={python_version}",
                    "--implementation=cp",
                    *platforms,
                    "-d",
                    str(staging),
                    str(own),
                ],
                check=True,
            )
            (staging / ".complete").write_text(build_id + "\n")
            shutil.rmtree(wheelhouse, ignore_errors=True)
            staging.rename(wheelhouse)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    wheels = sorted(path.name for path in wheelhouse.glob("*.whl"))
    return {"build_id": f"{version}-{build_id}", "version": version, "wheelhouse": str(wheelhouse), "wheels": wheels}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="the hb2r checkout")
    parser.add_argument("--python-version", required=True, help="the host's Python, e.g. 3.11")
    parser.add_argument("--machine", required=True, help="the host's machine, e.g. x86_64")
    parser.add_argument("--cache", type=Path, required=True, help="where wheelhouses are kept")
    arguments = parser.parse_args()
    if not re.fullmatch(r"3\.\d{1,2}", arguments.python_version):
        parser.error(f"--python-version must look like 3.11, got {arguments.python_version!r}")
    result = build(
        arguments.source.resolve(),
        python_version=arguments.python_version,
        machine=arguments.machine,
        cache=arguments.cache,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
