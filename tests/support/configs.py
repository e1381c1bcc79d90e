"""The one-library agent config that end-to-end tests and benchmarks start `hb2r run` with.

Relative paths resolve against the config's folder, so a config written into a test's tmp_path
keeps everything (source, archive, state) inside it. Limits that never bind and a short retry
backoff are the defaults: a test that is about the gate or retries says so through the options.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.ports import free_port

PRESET = "Very Fast 480p30"
OPEN_LIMITS = {"cpu_percent": "100", "memory_percent": "100", "min_free_memory": "64MiB", "min_free_disk": "1MiB"}


def write_config(
    root: Path,
    *,
    library: str = "tv",
    source: str = "tv",
    output: str = "TV",
    preset: str = "tv",
    stable_after: str | None = "1s",
    interval: str = "1s",
    limits: dict[str, str] | None = None,
    max_jobs: str = "1",
    extra_limits: str = "",
    attempts: int | None = 2,
    backoff: str = "1s",
    max_backoff: str = "2s",
    bcrypt_rounds: int | None = 4,
    port: int | None = None,
    users: str = "",
) -> Path:
    """Write root/config.yaml for library `library` (root/source -> archive/output, preset PRESET),
    with the API on loopback at port (a free one unless given) and `users` as `users:` list lines;
    make the source and archive folders; return the config's path.

    limits: the limits' keys besides max_jobs (OPEN_LIMITS unless given; {} for the defaults); `extra_limits` are more
    lines under `limits:`. attempts=None leaves `retry:` out, stable_after=None the library's key.
    """
    for folder in (source, "archive"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    stable = f", stable_after: {stable_after}" if stable_after is not None else ""
    chosen = {**(OPEN_LIMITS if limits is None else limits), "max_jobs": max_jobs}
    limit_lines = "".join(f"  {key}: {value}\n" for key, value in chosen.items())
    retry = f"retry: {{attempts: {attempts}, backoff: {backoff}, max_backoff: {max_backoff}}}\n" if attempts else ""
    rounds = f", bcrypt_rounds: {bcrypt_rounds}" if bcrypt_rounds is not None else ""
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries:\n"
        f"  - {{name: {library}, source: {source}, output: {output}, preset: {preset}{stable}}}\n"
        "presets:\n"
        f'  {preset}: {{handbrake: "{PRESET}", container: mkv}}\n'
        f"scan: {{interval: {interval}}}\n"
        f"limits:\n{limit_lines}{extra_limits}"
        + ("\n" if extra_limits and not extra_limits.endswith("\n") else "")
        + retry
        + f"auth: {{jwt_secret_file: state/jwt.secret{rounds}}}\n"
        f'server: {{listen: "127.0.0.1:{port or free_port()}"}}\n' + (f"users:\n{users}" if users else "")
    )
    return config


def write_small_library(root: Path, *, files: int, output_folder: bool = False, extra: str = "") -> Path:
    """Make root/tv with `files` small episodes of distinct content (E00.mkv, E01.mkv, ...) and root/archive
    (with archive/TV if output_folder); write a minimal config over them (stable at once), with the
    top-level lines `extra`; return its path."""
    for folder in ("tv", "archive", *(["archive/TV"] if output_folder else [])):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for number in range(files):
        (root / "tv" / f"E{number:02d}.mkv").write_bytes(f"episode {number}".encode() * 100)
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries: [{name: tv, source: tv, output: TV, preset: tv, stable_after: 0s}]\n"
        f"presets: {{tv: {{handbrake: '{PRESET}'}}}}\n" + extra
    )
    return config
