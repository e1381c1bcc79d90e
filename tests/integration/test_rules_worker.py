"""What the dispatcher does with the rules: the tracks an encode keeps, the preset `hdr:` names, and an
output that saved too little (`larger_output`). Real clips made with ffmpeg, real HandBrakeCLI and
ffprobe, a real state database, the real pass and dispatcher.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.store import jobs
from tests.support.archive import Agent, require_tools, write_config
from tests.support.clips import make_clip
from tests.support.media_clips import make_hdr10, make_multi_track, make_tiny_hevc

pytestmark = pytest.mark.usefixtures("tools")


@pytest.fixture
def tools() -> None:
    require_tools()


def config_with(tmp_path: Path, settings: str) -> Path:
    archive = tmp_path / "archive"
    archive.mkdir(exist_ok=True)
    config_path = write_config(tmp_path, archive=archive)
    config_path.write_text(config_path.read_text() + settings)
    return config_path


def streams(path: Path) -> list[dict[str, Any]]:
    described = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    found: list[dict[str, Any]] = json.loads(described.stdout)["streams"]
    return found


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def encode_all(agent: Agent) -> list[jobs.Job]:
    """Run a pass, every job it queued to its end, and a second pass; return the jobs."""

    async def scenario() -> list[jobs.Job]:
        await agent.scan()
        for _ in jobs.list_jobs(agent.connection, state=jobs.JobState.QUEUED):
            await agent.run_one(timeout=120)
        await agent.scan()
        return jobs.list_jobs(agent.connection)

    return asyncio.run(scenario())


@pytest.mark.parametrize("then", ["copy", "keep", "skip"])
def test_an_output_that_saves_too_little_goes_by_larger_output_and_is_not_encoded_again(
    tmp_path: Path, then: str
) -> None:
    config_path = config_with(tmp_path, f"larger_output: {{min_saving: 99, then: {then}}}\n")  # no encode saves 99 %
    source = make_clip(tmp_path / "tv" / "clip.mkv", seconds=2, size="160x90")
    before = sha(source)
    agent = Agent.from_file(config_path)
    try:
        (job,) = encode_all(agent)

        published = tmp_path / "archive" / "TV" / "clip.mkv"
        assert job.state == jobs.JobState.DONE
        if then == "copy":
            assert published.read_bytes() == source.read_bytes()
        elif then == "keep":
            assert sha(published) != before and streams(published)[0]["codec_name"] == "h264"
        else:
            assert not published.exists()
        assert len(agent.state.store.load_ledger().entries) == 1  # recorded: a later pass encodes nothing
        metrics = agent.context.metrics.render()[0].decode()
        assert f'hb2r_larger_output_total{{library="tv",then="{then}"}} 1.0' in metrics
        # recorded in the ledger too, so the count outlives the agent (and is any host's)
        assert f'hb2r_larger_output_fallbacks{{library="tv",then="{then}"}} 1.0' in metrics
        recorded = agent.state.store.decisions_by_library()["tv"]
        assert (recorded.copies, recorded.larger_output) == (0, {then: 1})  # a fallback copy is no rule's copy
        assert agent.state.last_pass is not None and not agent.state.last_pass.pending
        assert sha(source) == before
    finally:
        agent.close()


def test_with_default_settings_an_efficient_hevc_source_never_lands_larger(tmp_path: Path) -> None:
    config_path = config_with(tmp_path, "")
    source = make_tiny_hevc(tmp_path / "tv" / "hevc.mkv")
    before = sha(source)
    agent = Agent.from_file(config_path)
    try:
        (job,) = encode_all(agent)

        published = tmp_path / "archive" / "TV" / "hevc.mkv"
        assert job.state == jobs.JobState.DONE
        assert published.stat().st_size <= source.stat().st_size
        assert sha(published) == before  # Very Fast 480p30 made it larger: the source was published instead
        assert sha(source) == before
    finally:
        agent.close()


def test_hdr_named_preset_encodes_10_bit_hdr10_and_the_default_never_8_bit(tmp_path: Path) -> None:
    settings = (
        "hdr: hdr\n"
        "larger_output: {min_saving: 0, then: keep}\n"
    )
    config_path = config_with(tmp_path, settings)
    text = config_path.read_text().replace(
        "presets: {tv: {handbrake: 'Very Fast 480p30'}}",
        "presets: {tv: {handbrake: 'Very Fast 480p30'}, hdr: {handbrake: 'H.265 MKV 480p30',"
        " args: [--encoder, x265_10bit, --encoder-preset, ultrafast]}}",
    )
    config_path.write_text(text)
    source = make_hdr10(tmp_path / "tv" / "hdr10.mkv")
    before = sha(source)
    agent = Agent.from_file(config_path)
    try:
        (job,) = encode_all(agent)

        published = tmp_path / "archive" / "TV" / "hdr10.mkv"
        assert job.state == jobs.JobState.DONE, job.error
        (video,) = [stream for stream in streams(published) if stream["codec_type"] == "video"]
        assert (video["codec_name"], video["pix_fmt"]) == ("hevc", "yuv420p10le")
        assert (video["color_transfer"], video["color_primaries"]) == ("smpte2084", "bt2020")
        assert sha(published) != before  # an encode, with the preset hdr: names
        assert agent.state.last_pass is not None and not agent.state.last_pass.pending  # in sync, no drift
        assert sha(source) == before
    finally:
        agent.close()


def test_the_output_carries_exactly_the_tracks_the_rules_ask_for_and_nothing_burned_in(tmp_path: Path) -> None:
    settings = (
        "audio: {languages: [eng, jpn], keep: all}\n"
        "subtitles: {languages: [eng], forced_only: true}\n"
        "larger_output: {min_saving: 0, then: keep}\n"
    )
    config_path = config_with(tmp_path, settings)
    source = make_multi_track(tmp_path / "tv" / "multi.mkv")
    before = sha(source)
    agent = Agent.from_file(config_path)
    try:
        (job,) = encode_all(agent)

        assert job.state == jobs.JobState.DONE, job.error
        found = streams(tmp_path / "archive" / "TV" / "multi.mkv")
        audio = [stream.get("tags", {}).get("language") for stream in found if stream["codec_type"] == "audio"]
        subtitles = [stream for stream in found if stream["codec_type"] == "subtitle"]
        assert audio == ["eng", "jpn"]
        assert [stream.get("tags", {}).get("language") for stream in subtitles] == ["eng"]  # the forced one alone
        assert "Forced words" in subtitle_text(tmp_path / "archive" / "TV" / "multi.mkv")  # a track, not burned in
        assert sha(source) == before
    finally:
        agent.close()


def subtitle_text(path: Path) -> str:
    extracted = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:s:0", "-f", "srt", "-"],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return extracted.stdout
