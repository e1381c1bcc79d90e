"""Real podman for the container tests: can it run containers here, the base image, hb2r's image.

How podman is set up on these machines (and why):

* no image registry is reachable, so ``debian:12-slim`` is made locally: ``debootstrap --variant=minbase bookworm``
  (what Debian's slim image is built from), ``podman import``-ed and tagged ``debian:12-slim``; hb2r's image is then
  built from ``packaging/Containerfile`` with ``podman build --pull=never`` (apt inside the build reaches Debian's
  mirror over the host's network);
* the hosts have a hybrid cgroup layout (v1 controllers, v2 mounted beside them): ``crun`` fails on it, ``runc``
  works, with the ``cgroupfs`` manager (no systemd as PID 1);
* raising rlimits is not permitted, so ``default_ulimits = []`` (podman's default raises the open files limit);
* host networking (no bridge or slirp4netns here): whatever the container listens on, it listens on the host's
  network, so every test binds to 127.0.0.1 and a free port.

That configuration is a containers.conf that ``CONTAINERS_CONF`` points at (``containers_conf()``); nothing on the
machine's own podman configuration changes.

Both images are cached by a hash of their inputs, like the deploy tests' roots (tests/deploy/testhost.py): the base's
rootfs tarball in ``CACHE_DIR`` (``$HB2R_CONTAINER_CACHE``, default ``/var/cache/hb2r-container``) and, in podman's
own storage, ``localhost/hb2r-base:<hash>`` and ``localhost/hb2r:test-<hash>`` (the hash of the Containerfile, the
entrypoint, the container config, the wheel's sources and the base). A warm run builds nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.deploy.testhost import _locked, _remove_tree, apt_mirror

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("HB2R_CONTAINER_CACHE", "/var/cache/hb2r-container"))
SUITE = "bookworm"
BASE_TAG = "docker.io/library/debian:12-slim"  # what `FROM debian:12-slim` resolves to
# Bump when _slim_down or the import changes in a way that needs a new base.
BASE_FORMAT = 1
CONTAINERS_CONF = """\
# Written by tests/container/podman.py for the container tests (see its docstring).
[containers]
default_ulimits = []
netns = "host"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# What the image is made of: a change to any of these builds a new image.
IMAGE_INPUTS = (
    "packaging/Containerfile",
    "packaging/entrypoint.sh",
    "examples/container.yaml",
    "pyproject.toml",
    "README.md",
    ".dockerignore",
)
# Bump when the build's arguments (below) change in a way that makes a different image.
BUILD_FORMAT = 2


class PodmanError(RuntimeError):
    """A podman command failed; the message carries its output."""


def containers_conf() -> Path:
    """Return the containers.conf for these tests (written once into the cache)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / "containers.conf"
    if not path.is_file() or path.read_text() != CONTAINERS_CONF:
        path.write_text(CONTAINERS_CONF)
    return path


def environment() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf())}


def podman(*args: str, check: bool = True, timeout: float = 120, input_bytes: bytes | None = None) -> str:
    """Run podman with the tests' configuration; return its stdout (raise PodmanError on failure if check)."""
    result = subprocess.run(
        ["podman", *args],
        env=environment(),
        input=input_bytes,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise PodmanError(
            f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout.decode(errors='replace')}"
            f"\n{result.stderr.decode(errors='replace')}"
        )
    return result.stdout.decode(errors="replace")


def why_not_runnable() -> str | None:
    """Return why containers cannot run on this machine (what is missing), or None if they can."""
    if os.geteuid() != 0:
        return "the container tests need root (rootful podman with runc)"
    missing = [name for name in ("podman", "runc") if shutil.which(name) is None]
    if not (shutil.which("debootstrap") or Path("/usr/sbin/debootstrap").exists()):
        missing.append("debootstrap")
    if missing:
        return f"{', '.join(missing)} not installed (scripts/install-system-packages.sh installs them)"
    try:
        podman("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=60)
    except (PodmanError, subprocess.TimeoutExpired) as error:
        return f"podman cannot run here: {error}"
    return None


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:16]


def base_hash() -> str:
    spec = {"suite": SUITE, "variant": "minbase", "format": BASE_FORMAT, "mirror": apt_mirror(SUITE)}
    return _digest(json.dumps(spec, sort_keys=True).encode())


def image_hash() -> str:
    """Hash of everything the image is built from: the Containerfile and its files, the wheel's sources, the base."""
    files = [REPO / name for name in IMAGE_INPUTS]
    files += sorted(path for path in (REPO / "agent").rglob("*") if path.is_file() and "__pycache__" not in path.parts)
    parts = [base_hash().encode(), str(BUILD_FORMAT).encode()]
    for path in files:
        parts += [str(path.relative_to(REPO)).encode(), path.read_bytes()]
    return _digest(*parts)


def image_exists(tag: str) -> bool:
    return subprocess.run(["podman", "image", "exists", tag], env=environment(), check=False).returncode == 0


def ensure_base() -> str:
    """Make `debian:12-slim` (and `localhost/hb2r-base:<hash>`) from a cached debootstrap root; return the tag."""
    tag = f"localhost/hb2r-base:{base_hash()}"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with _locked(CACHE_DIR / ".build.lock"):
        if not image_exists(tag):
            tarball = CACHE_DIR / f"{SUITE}-minbase-{base_hash()}.tar"
            if not tarball.is_file():
                _debootstrap_tarball(tarball)
            podman(
                "import",
                "--change",
                'CMD ["bash"]',
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                str(tarball),
                tag,
                timeout=600,
            )
        podman("tag", tag, BASE_TAG)
    return tag


def _debootstrap_tarball(tarball: Path) -> None:
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    debs = CACHE_DIR / "debs"
    debs.mkdir(exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".build-base-", dir=CACHE_DIR))
    try:
        argv = [debootstrap, "--variant=minbase", f"--cache-dir={debs}", SUITE, str(building), apt_mirror(SUITE)]
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=1200)
        if result.returncode != 0:
            raise PodmanError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout.decode()[-4000:]}")
        _slim_down(building)
        partial = tarball.with_suffix(".tar.partial")
        subprocess.run(["tar", "-C", str(building), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    finally:
        _remove_tree(building)


def _slim_down(root: Path) -> None:
    """What Debian's slim images leave out or set: no apt lists or downloaded debs, no docs, no man pages."""
    for folder in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "usr/share/info"):
        path = root / folder
        if path.is_dir():
            shutil.rmtree(path)
            path.mkdir()
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (root / "etc/hostname").unlink(missing_ok=True)
    # The build machine's resolv.conf is copied in by debootstrap; podman provides its own.
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    dpkg = root / "etc/dpkg/dpkg.cfg.d"
    dpkg.mkdir(parents=True, exist_ok=True)
    (dpkg / "docker").write_text(
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
        "path-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n"
    )
    (root / "etc/apt/apt.conf.d/docker-clean").write_text(
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\nAPT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'
    )


def ensure_image() -> tuple[str, float]:
    """Return hb2r's image tag for this checkout, building it first if needed, and the seconds spent building."""
    started = time.monotonic()
    ensure_base()
    tag = f"localhost/hb2r:test-{image_hash()}"
    with _locked(CACHE_DIR / ".build.lock"):
        if not image_exists(tag):
            build(tag)
            _forget_older_images(keep=tag)
    return tag, time.monotonic() - started


def _forget_older_images(*, keep: str) -> None:
    """Remove the images of earlier checkouts (about 650 MB each) and the build stages left untagged."""
    for line in podman("images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/hb2r").splitlines():
        if line.startswith("localhost/hb2r:test-") and line != keep:
            podman("rmi", "--force", line, check=False)
    podman("image", "prune", "--force", check=False)


def build(tag: str, *, extra: Sequence[str] = ()) -> None:
    """`podman build --pull=never` of packaging/Containerfile from this checkout (the same as `make image`)."""
    podman(
        "build",
        "--pull=never",
        "--network=host",
        "--format=docker",  # the OCI format has no HEALTHCHECK: podman would drop it
        *_package_index_arguments(),
        "--file",
        str(REPO / "packaging/Containerfile"),
        "--tag",
        tag,
        *extra,
        str(REPO),
        timeout=1800,
    )


def _package_index_arguments() -> list[str]:
    """The build's pip reaches the index the way this machine's pip does: through the CA bundle that
    `PIP_CERT` or `SSL_CERT_FILE` names (a proxy that re-signs TLS), and `PIP_INDEX_URL` if set."""
    arguments: list[str] = []
    cert = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if cert and Path(cert).is_file():
        arguments += [
            "--volume",
            f"{Path(cert).resolve()}:/etc/ssl/build-ca.pem:ro",
            "--build-arg",
            "PIP_CERT=/etc/ssl/build-ca.pem",
        ]
    if index := os.environ.get("PIP_INDEX_URL"):
        arguments += ["--build-arg", f"PIP_INDEX_URL={index}"]
    return arguments
