"""Build the wheelhouse a deploy ships: hb2r's wheel and every dependency as a wheel, for the
target host's Python and machine, so the host installs with no compiler and no index.

Run on the control machine by deploy.yml. Prints one JSON object:
{"build_id", "version", "wheelhouse", "wheels"}. The build id is a hash of the source (the
`agent` package and pyproject.toml), the target and the extras, so an unchanged checkout reuses its
wheelhouse and the host its release: a second deploy changes nothing. `--extra postgres` adds
psycopg for a host whose store is PostgreSQL (it loads the host's libpq5, which the playbook installs).

Dependencies come from the package index as binary wheels for the target (`pip download
--only-binary=:all: --python-version --platform`); hb2r itself is pure Python and built here.
"""

from __future__ import annotations

import argparse
import fcntl
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


def build(
    source: Path, *, python_version: str, machine: str, cache: Path, extras: tuple[str, ...] = ()
) -> dict[str, object]:
    version = version_of(source)
    target = f"{source_hash(source)}|{python_version}|{machine}"
    if extras:
        target += "|" + ",".join(sorted(extras))
    build_id = hashlib.sha256(target.encode()).hexdigest()[:12]
    wheelhouse = cache / build_id
    if not (wheelhouse / ".complete").exists():
        cache.mkdir(parents=True, exist_ok=True)
        # A deploy to several hosts runs this once per host at the same time: one builds, the others wait and reuse it.
        with (cache / f".{build_id}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (wheelhouse / ".complete").exists():
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
                            f"{own}[{','.join(sorted(extras))}]" if extras else str(own),
                        ],
                        check=True,
                    )
                    (staging / ".complete").write_text(build_id + "\n")
                    shutil.rmtree(wheelhouse, ignore_errors=True)
                    staging.rename(wheelhouse)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
    wheels = sorted(path.name for path in wheelhouse.glob("*.whl"))
    return {
        "build_id": f"{version}-{build_id}",
        "version": version,
        "wheelhouse": str(wheelhouse),
        "wheels": wheels,
        "requirement": f"hb2r[{','.join(sorted(extras))}]=={version}" if extras else f"hb2r=={version}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="the hb2r checkout")
    parser.add_argument("--python-version", required=True, help="the host's Python, e.g. 3.11")
    parser.add_argument("--machine", required=True, help="the host's machine, e.g. x86_64")
    parser.add_argument("--cache", type=Path, required=True, help="where wheelhouses are kept")
    parser.add_argument(
        "--extra", action="append", default=[], choices=["postgres"], help="an optional dependency set to include"
    )
    arguments = parser.parse_args()
    if not re.fullmatch(r"3\.\d{1,2}", arguments.python_version):
        parser.error(f"--python-version must look like 3.11, got {arguments.python_version!r}")
    result = build(
        arguments.source.resolve(),
        python_version=arguments.python_version,
        machine=arguments.machine,
        cache=arguments.cache,
        extras=tuple(arguments.extra),
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
