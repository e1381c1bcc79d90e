"""muxed_bytes(): the payload HandBrakeCLI says it handed to the container, from its stderr."""

from __future__ import annotations

from pathlib import Path

from agent.handbrake.mux import muxed_bytes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "handbrake"


def test_the_mux_totals_of_a_real_encode_on_a_full_disk_are_summed_over_its_tracks() -> None:
    lines = (FIXTURES / "encode-disk-full-1.6.1.stderr.txt").read_text().splitlines()

    assert muxed_bytes(lines) == 88_518 + 42_851  # video and audio; the file itself held 28 672


def test_without_mux_lines_the_total_is_unknown() -> None:
    assert muxed_bytes(["[10:50:25] libhb: work result = 0", "Encode done!"]) is None


def test_a_track_reported_again_counts_once_with_its_last_total() -> None:
    lines = ["mux: track 0, 10 frames, 500 bytes, 1 kbps, fifo 8", "mux: track 0, 75 frames, 900 bytes, 1 kbps, fifo 8"]

    assert muxed_bytes(lines) == 900
