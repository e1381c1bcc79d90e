"""A pass decides each file by its library's rules, from facts ffprobe read once per content.

Real clips made with ffmpeg, real ffprobe, a real state database and the real engine pass; the
archive is on the sources' file system (a hard link) or on a tmpfs of its own (a verified copy).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.api.app import init_app
from agent.engine import reconcile
from agent.handbrake import probe
from agent.observe import preset_hashes
from agent.store import jobs
from agent.wording import human_size
from tests.support import api as api_support
from tests.support.archive import Agent, require_tools, tmpfs, write_config
from tests.support.clips import make_clip
from tests.support.media_clips import make_hdr10, make_tiny_hevc
from tests.support.plan_cli import run_plan

pytestmark = pytest.mark.usefixtures("tools")

LEAVE_HEVC_ALONE = (
    "rules:\n"
    "  - {name: already efficient, when: {codec: [hevc, av1]}, action: copy}\n"
    "  - {name: tiny, when: {height_at_most: 40}, action: skip}\n"
)


@pytest.fixture
def tools() -> None:
    require_tools()


@pytest.fixture
def ffprobe_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Count the ffprobe processes the probe starts (the real ones run)."""
    started: list[list[str]] = []
    real = probe._run_ffprobe

    def counted(argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str] | None:
        started.append(argv)
        return real(argv, timeout=timeout)

    monkeypatch.setattr(probe, "_run_ffprobe", counted)
    yield started


def digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def library(root: Path) -> Path:
    tv = root / "tv"
    make_tiny_hevc(tv / "Show" / "hevc.mkv")
    make_clip(tv / "Show" / "h264.mkv", seconds=2, size="160x90")
    make_hdr10(tv / "Show" / "hdr10.mkv")
    (tv / "Show" / "broken.mkv").write_bytes(bytes(64 * 1024))  # no media ffprobe can read: zeros
    (tv / "Show" / "small.mkv").write_bytes(make_clip(root / "x" / "small.mkv", seconds=0.2, size="32x32").read_bytes())
    return tv


def rule_library(root: Path) -> tuple[Path, Path, Path, dict[str, str]]:
    """The library of `library()` under a config that leaves HEVC alone; return (archive, config, the
    library's folder, its files' digests before anything ran)."""
    archive = root / "archive"
    archive.mkdir()
    config_path = write_config(root, archive=archive)
    config_path.write_text(config_path.read_text() + LEAVE_HEVC_ALONE)
    tv = library(root)
    return archive, config_path, tv, digests(tv)


def test_a_pass_copies_what_a_rule_leaves_alone_and_probes_each_content_once(
    tmp_path: Path, ffprobe_runs: list[list[str]]
) -> None:
    archive, config_path, tv, before = rule_library(tmp_path)
    agent = Agent.from_file(config_path)
    try:
        asyncio.run(agent.scan())

        copied = archive / "TV" / "Show" / "hevc.mkv"
        assert copied.read_bytes() == (tv / "Show" / "hevc.mkv").read_bytes()
        assert copied.stat().st_ino == (tv / "Show" / "hevc.mkv").stat().st_ino  # a hard link: same file system
        # HDR10 with the default `hdr: copy`: the source as it is, never an 8-bit encode
        assert (archive / "TV" / "Show" / "hdr10.mkv").read_bytes() == (tv / "Show" / "hdr10.mkv").read_bytes()
        queued = {job.rel_path for job in jobs.list_jobs(agent.connection)}
        assert queued == {"Show/h264.mkv", "Show/broken.mkv"}  # the pass went on past the corrupt file
        assert not (archive / "TV" / "Show" / "small.mkv").exists()  # skipped by the rule "tiny"
        logged = [json.loads(line) for line in agent.stream.getvalue().splitlines()]
        unreadable = [entry for entry in logged if entry.get("event") == "media facts unreadable"]
        assert len(unreadable) == 1 and "broken.mkv" in unreadable[0]["error"], unreadable
        skipped = [entry for entry in logged if entry.get("event") == "file skipped"]
        assert [entry["path"] for entry in skipped] == ["Show/small.mkv"]
        assert 'rule "tiny"' in skipped[0]["reason"]
        recorded = agent.state.store.load_ledger().entries
        assert sorted((row.rel_path, row.output_path) for row in recorded) == [
            ("Show/hdr10.mkv", "TV/Show/hdr10.mkv"),
            ("Show/hevc.mkv", "TV/Show/hevc.mkv"),
        ]
        probed = len(ffprobe_runs)
        assert probed >= 5  # each of the five contents, once

        asyncio.run(agent.scan())
        asyncio.run(agent.scan())

        assert len(ffprobe_runs) == probed  # known facts (and known failures) are not probed again
        assert {job.rel_path for job in jobs.list_jobs(agent.connection)} == queued
        assert digests(tv) == before
    finally:
        agent.close()


def test_across_file_systems_a_copy_is_a_verified_copy(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "archive", size="8m") as archive:
        config_path = write_config(tmp_path, archive=archive)
        config_path.write_text(config_path.read_text() + LEAVE_HEVC_ALONE)
        source = make_tiny_hevc(tmp_path / "tv" / "hevc.mkv")
        before = digests(tmp_path / "tv")
        agent = Agent.from_file(config_path)
        try:
            asyncio.run(agent.scan())

            copied = archive / "TV" / "hevc.mkv"
            assert copied.read_bytes() == source.read_bytes()
            assert copied.stat().st_dev != source.stat().st_dev
            assert oct(copied.stat().st_mode & 0o777) == oct(int(agent.config.paths.archive_mode, 8))
            assert not list((archive / ".hb2r-partial").iterdir())  # nothing left behind
            assert digests(tmp_path / "tv") == before
            assert jobs.list_jobs(agent.connection) == []
        finally:
            agent.close()


def test_plan_with_probe_shows_each_files_action_the_rule_and_the_reason_and_json_the_facts(tmp_path: Path) -> None:
    archive, config_path, tv, before = rule_library(tmp_path)

    unprobed = run_plan(config_path)
    shown = run_plan(config_path, "--probe")
    as_json = json.loads(run_plan(config_path, "--json", "--probe").stdout)

    # Without --probe, files the agent has not probed yet are planned by the preset, facts unknown.
    assert unprobed.returncode == 2, unprobed.stderr
    assert "  + transcode Show/hevc.mkv -> TV/Show/hevc.mkv (new)" in unprobed.stdout.splitlines()
    assert unprobed.stdout.splitlines()[-1] == "Plan: 5 to transcode."
    assert shown.returncode == 2, shown.stderr
    lines = shown.stdout.splitlines()
    said = {line.split()[2]: line for line in lines if line.startswith("  ") and "Show/" in line}
    assert said["Show/hevc.mkv"].startswith("  = copy      Show/hevc.mkv -> TV/Show/hevc.mkv (hevc ")
    assert said["Show/hevc.mkv"].endswith(' kb/s: rule "already efficient")')
    assert said["Show/hdr10.mkv"].startswith("  = copy      Show/hdr10.mkv -> TV/Show/hdr10.mkv (hevc 10-bit ")
    assert said["Show/small.mkv"].startswith("  ! skip      Show/small.mkv (h264 ")
    assert said["Show/small.mkv"].endswith(' kb/s: rule "tiny")')
    # No encode finished yet: H.264 is expected to save 40% (agent.saving_estimate), an unreadable file nothing.
    h264_saving = round((tv / "Show" / "h264.mkv").stat().st_size * 0.4)
    estimate = f"est. saving {human_size(h264_saving)}"
    assert said["Show/h264.mkv"] == f"  + transcode Show/h264.mkv -> TV/Show/h264.mkv (new; {estimate})"
    assert said["Show/broken.mkv"].endswith("encoded with the library's preset; est. saving 0 B)")
    assert lines[-2] == f"Estimated saving: {human_size(h264_saving)} (2 files to encode)"
    assert said["Show/broken.mkv"].startswith("  + transcode Show/broken.mkv -> TV/Show/broken.mkv (new; ")
    assert "ffprobe cannot read it" in said["Show/broken.mkv"]
    assert lines[-1] == "Plan: 2 to transcode, 2 to copy, 1 skipped."
    by_path = {action.get("path"): action for action in as_json["actions"]}
    assert by_path["Show/hevc.mkv"]["kind"] == "copy"
    assert by_path["Show/hevc.mkv"]["rule"] == "already efficient"
    assert by_path["Show/hevc.mkv"]["facts"]["video"]["codec"] == "hevc"
    assert by_path["Show/hdr10.mkv"]["facts"]["video"]["hdr"] == "hdr10"
    assert by_path["Show/broken.mkv"]["facts"] is None
    assert "Invalid data found" in by_path["Show/broken.mkv"]["facts_error"]
    assert as_json["summary"]["copy"] == 2
    assert by_path["Show/h264.mkv"]["estimated_saving"] == h264_saving
    assert by_path["Show/broken.mkv"]["estimated_saving"] == 0
    assert as_json["estimated_saving"] == {"bytes": h264_saving, "files": 2, "not_estimated": 0}
    assert not list(archive.iterdir())  # plan writes nothing
    assert digests(tv) == before


def test_plan_text_shows_a_file_whose_probe_failed_with_its_reason(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    config_path = write_config(tmp_path, archive=archive)
    config_path.write_text(config_path.read_text() + LEAVE_HEVC_ALONE)
    corrupt = tmp_path / "tv" / "Show" / "corrupt.mkv"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"\x1aE\xdf\xa3" + b"garbage " * 4000)  # a Matroska magic number, then nothing valid
    make_clip(tmp_path / "tv" / "Show" / "h264.mkv", seconds=2, size="160x90")
    before = digests(tmp_path / "tv")

    probed_now = run_plan(config_path, "--probe").stdout.splitlines()
    agent = Agent.from_file(config_path)
    try:
        asyncio.run(agent.scan())  # the agent probes once and keeps the failure with its reason
    finally:
        agent.close()
    kept = run_plan(config_path).stdout.splitlines()

    for lines in (probed_now, kept):
        line = next(line for line in lines if "Show/corrupt.mkv ->" in line)
        assert line.startswith("  + ") and "ffprobe cannot read it (exit code 1)" in line, lines
        assert "Invalid data found" in line, line
        assert "Show/h264.mkv ->" in "\n".join(lines) and "cannot read" not in next(
            each for each in lines if "Show/h264.mkv ->" in each
        )
    assert digests(tmp_path / "tv") == before


def test_a_copy_stays_in_sync_and_shows_drift_once_its_rule_is_removed(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    config_path = write_config(tmp_path, archive=archive)
    without_rules = config_path.read_text()
    config_path.write_text(without_rules + LEAVE_HEVC_ALONE)
    make_tiny_hevc(tmp_path / "tv" / "hevc.mkv")
    agent = Agent.from_file(config_path)
    try:
        asyncio.run(agent.scan())
    finally:
        agent.close()

    in_sync = run_plan(config_path)
    config_path.write_text(without_rules)  # the owner no longer leaves HEVC alone
    drifted = run_plan(config_path)

    assert in_sync.returncode == 0, in_sync.stdout + in_sync.stderr
    assert in_sync.stdout.splitlines()[-1] == "Plan: in sync, nothing to do."
    assert drifted.returncode == 0, drifted.stderr  # drift is a report: the copy is kept
    assert "  ~ drift     hevc.mkv (preset changed; output kept: TV/hevc.mkv)" in drifted.stdout.splitlines()


async def test_the_api_and_metrics_count_each_librarys_rule_copies_and_skips(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    tv = tmp_path / "tv"
    make_tiny_hevc(tv / "Show" / "hevc.mkv")  # copied: "already efficient"
    make_clip(tv / "Show" / "h264.mkv", seconds=2, size="160x90")  # encoded
    small = make_clip(tmp_path / "x" / "small.mkv", seconds=0.2, size="32x32")  # skipped: "tiny"
    (tv / "Show" / "small.mkv").write_bytes(small.read_bytes())
    before = digests(tv)
    config_path = api_support.write_config(tmp_path, extra=LEAVE_HEVC_ALONE)
    config_path.write_text(config_path.read_text().replace("preset: fast}", "preset: fast, stable_after: 0s}"))
    context = api_support.build_context(config_path)
    context.state.preset_hashes = preset_hashes(context.state.config, warn=print)  # as `hb2r run` does
    api = api_support.Api(context=context, client=await aiohttp_client(init_app(context)))
    try:
        await reconcile(context.state, log=context.log)
        await reconcile(context.state, log=context.log)  # counted once, however many passes

        response = await api.client.get("/api/status", headers=await api.viewer())
        assert response.status == 200, await response.text()
        by_library = {library["name"]: library["rules"] for library in (await response.json())["libraries"]}
        assert by_library == {
            "tv": {"copies": 1, "skips": 1, "larger_output": {"copy": 0, "keep": 0, "skip": 0}},
            "movies": {"copies": 0, "skips": 0, "larger_output": {"copy": 0, "keep": 0, "skip": 0}},
        }
        metrics = await (await api.client.get("/metrics")).text()
        assert 'hb2r_rule_copies{library="tv"} 1.0' in metrics
        assert 'hb2r_rule_skips{library="tv"} 1.0' in metrics
        assert 'hb2r_rule_skips{library="movies"} 0.0' in metrics
        assert 'hb2r_larger_output_fallbacks{library="tv",then="copy"} 0.0' in metrics
        assert digests(tv) == before
    finally:
        context.checker.close()
        context.state.store.close()


def test_jobs_shows_a_files_unreadable_media_facts_on_its_line_and_in_json(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    config_path = write_config(tmp_path, archive=archive)
    tv = tmp_path / "tv"
    make_clip(tv / "Show" / "h264.mkv", seconds=2, size="160x90")
    (tv / "Show" / "broken.mkv").write_bytes(bytes(64 * 1024))  # no media ffprobe can read: zeros
    before = digests(tv)
    agent = Agent.from_file(config_path)
    try:
        asyncio.run(agent.scan())  # probes both (the real ffprobe) and queues both
    finally:
        agent.close()

    table = run_jobs(config_path)
    as_json = json.loads(run_jobs(config_path, "--json").stdout)["jobs"]

    lines = {line.split()[4]: line for line in table.stdout.splitlines()[1:-1]}
    assert set(lines) == {"Show/h264.mkv", "Show/broken.mkv"}, table.stdout
    assert "media facts unreadable: broken.mkv: ffprobe" in lines["Show/broken.mkv"], table.stdout
    assert "Invalid data found" in lines["Show/broken.mkv"]
    assert "unreadable" not in lines["Show/h264.mkv"]
    by_path = {job["rel_path"]: job for job in as_json}
    assert "Invalid data found" in by_path["Show/broken.mkv"]["facts_error"]
    assert by_path["Show/h264.mkv"]["facts_error"] is None
    assert digests(tv) == before


def run_jobs(config: Path, *options: str) -> subprocess.CompletedProcess[str]:
    finished = subprocess.run(
        [sys.executable, "-m", "agent", "jobs", *options, str(config)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=120, check=False,
    )  # fmt: skip
    assert finished.returncode == 0 and "Traceback" not in finished.stderr, finished.stderr
    return finished
