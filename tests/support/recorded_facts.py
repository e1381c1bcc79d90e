"""Media facts of the clips the rules tests make, as ffprobe answered for them (recorded in
tests/fixtures/ffprobe): the pure tests decide on them without running ffprobe."""

from __future__ import annotations

from pathlib import Path

from agent.facts import MediaFacts, parse_facts

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "ffprobe"


def recorded(name: str) -> MediaFacts:
    """Return the facts of the recorded clip `name` (hevc, h264_low, hdr10, multi_track)."""
    return parse_facts((RECORDED / f"{name}.streams.json").read_text(), (RECORDED / f"{name}.frame.json").read_text())


HEVC, H264_LOW, HDR10, MULTI = (recorded(name) for name in ("hevc", "h264_low", "hdr10", "multi_track"))
