"""The progress parser on real HandBrakeCLI 1.6.1 output, however the pipe happens to cut it.

The fixtures in tests/fixtures/handbrake/ are stdout recorded from real encodes (see the
README there): `--json` blocks with libdvdread's banner mixed in, a two-pass encode, and
the plain `\\r`-separated lines HandBrakeCLI prints without `--json`.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agent.handbrake.progress import MAX_LINE_CHARS, Progress, ProgressParser, WorkDone

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "handbrake"
JSON_RECORDINGS = [
    "encode-2s-very-fast-480p30.stdout.txt",
    "encode-40s-fast-720p30.stdout.txt",
    "encode-20s-two-pass.stdout.txt",
]
ALL_RECORDINGS = [*JSON_RECORDINGS, "encode-40s-fast-720p30-plain.stdout.txt", "unreadable-input.stdout.txt"]


def recorded(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode()


def parse_whole(text: str) -> list[Progress | WorkDone]:
    parser = ProgressParser()
    return parser.feed(text) + parser.finish()


def parse_in_pieces(text: str, sizes: list[int]) -> list[Progress | WorkDone]:
    parser, events, position = ProgressParser(), [], 0
    for size in sizes:
        events += parser.feed(text[position : position + size])
        position += size
    events += parser.feed(text[position:])
    return events + parser.finish()


def test_a_short_real_encode_gives_its_progress_then_success() -> None:
    events = parse_whole(recorded("encode-2s-very-fast-480p30.stdout.txt"))

    first, last = events
    assert isinstance(first, Progress)
    assert first == Progress(percent=first.percent, fps=None, eta_seconds=None, pass_number=1, pass_count=1)
    assert first.percent == pytest.approx(98.0)
    assert last == WorkDone(error=0)


def test_a_longer_real_encode_rises_to_the_end_with_rate_and_eta_once_handbrake_knows_them() -> None:
    text = recorded("encode-40s-fast-720p30.stdout.txt")

    events = parse_whole(text)

    progress = [event for event in events if isinstance(event, Progress)]
    assert len(progress) == text.count('"State": "WORKING"')
    assert events[-1] == WorkDone(error=0)
    assert [p.percent for p in progress] == sorted(p.percent for p in progress)
    assert progress[-1].percent > 99
    # The first reports carry HandBrake's placeholders (rate 0 or 1e-7, ETA -1h): unknown, not 0 fps.
    assert progress[0].fps is None and progress[0].eta_seconds is None
    assert any(p.fps is not None and 50 < p.fps < 1000 and p.eta_seconds is not None for p in progress)
    assert all(p.fps is None or p.fps > 1 for p in progress)
    assert all(p.eta_seconds is None or 0 <= p.eta_seconds < 60 for p in progress)


def test_a_two_pass_encode_reports_each_pass_and_its_overall_progress_rises() -> None:
    progress = [e for e in parse_whole(recorded("encode-20s-two-pass.stdout.txt")) if isinstance(e, Progress)]

    assert {(p.pass_number, p.pass_count) for p in progress} == {(1, 2), (2, 2)}
    overall = [p.overall_percent for p in progress]
    assert overall == sorted(overall)
    assert 45 < max(p.overall_percent for p in progress if p.pass_number == 1) <= 50
    assert overall[-1] > 99


def test_plain_carriage_return_lines_are_read_when_there_is_no_json() -> None:
    progress = parse_whole(recorded("encode-40s-fast-720p30-plain.stdout.txt"))

    assert all(isinstance(p, Progress) and (p.pass_number, p.pass_count) == (1, 1) for p in progress)
    assert progress[0] == Progress(percent=5.6, fps=None, eta_seconds=None, pass_number=1, pass_count=1)
    assert progress[-1] == Progress(percent=99.9, fps=121.47, eta_seconds=0, pass_number=1, pass_count=1)
    assert Progress(percent=44.8, fps=94.26, eta_seconds=5, pass_number=1, pass_count=1) in progress


def test_the_plain_line_format() -> None:
    line = "Encoding: task 1 of 2, 45.20 % (120.5 fps, avg 110.2 fps, ETA 01h01m02s)\r"

    assert ProgressParser().feed(line) == [
        Progress(percent=45.2, fps=120.5, eta_seconds=3662, pass_number=1, pass_count=2)
    ]


@pytest.mark.parametrize("name", ALL_RECORDINGS)
def test_the_events_do_not_depend_on_how_the_stream_is_cut(name: str) -> None:
    text = recorded(name)
    whole = parse_whole(text)

    assert parse_in_pieces(text, [1] * len(text)) == whole
    for seed in range(20):
        chance = random.Random(seed)  # noqa: S311 - chunk sizes, not secrets
        assert parse_in_pieces(text, [chance.randint(1, 300) for _ in range(len(text))]) == whole, seed


def test_the_events_are_the_same_when_the_lines_end_in_crlf() -> None:
    text = recorded("encode-40s-fast-720p30.stdout.txt")

    assert parse_in_pieces(text.replace("\n", "\r\n"), [7] * len(text)) == parse_whole(text)


def test_a_last_line_without_a_line_break_is_read_at_the_end() -> None:
    parser = ProgressParser()

    assert parser.feed("Encoding: task 1 of 1, 50.00 %") == []
    assert parser.finish() == [Progress(percent=50.0, fps=None, eta_seconds=None, pass_number=1, pass_count=1)]


def block(body: str) -> str:
    return "Progress: {\n" + body + "\n}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            block('"State": "WORKDONE", "WorkDone": {"Error": 3, "SequenceID": 1}'), [WorkDone(error=3)], id="failed"
        ),
        pytest.param(
            block(
                '"State": "WORKING", "Working": {"Progress": 0.5, "Rate": 25.0, "Hours": 1, "Minutes": 2,'
                ' "Seconds": 3, "Pass": 1, "PassCount": 1}'
            ),
            [Progress(percent=50.0, fps=25.0, eta_seconds=3723, pass_number=1, pass_count=1)],
            id="eta-from-hours-minutes-seconds",
        ),
        pytest.param(
            block('"State": "WORKING", "Working": {"Progress": 1.7, "Rate": -1}'),
            [Progress(percent=100.0, fps=None, eta_seconds=None, pass_number=None, pass_count=None)],
            id="out-of-range-values-are-clamped-or-unknown",
        ),
        pytest.param(block('"State": "MUXING", "Muxing": {"Progress": 0.0}'), [], id="muxing-is-not-progress"),
        pytest.param(block('"State": "SCANNING", "Scanning": {"Progress": 0.5}'), [], id="scanning-is-not-progress"),
        pytest.param(block('"State": "WORKING", "Working": {"Progress": "half"}'), [], id="wrong-types"),
        pytest.param(block('"State": "WORKING", "Working": {"Progress": NaN}'), [], id="nan"),
        pytest.param(block('"State": "WORKING", "Working": [1, 2]'), [], id="working-not-an-object"),
        pytest.param(block('"State": "WORKDONE", "WorkDone": {"Error": true}'), [], id="error-not-a-number"),
        pytest.param(block('"State": "WORKING", "Working": {"Progress": 0.5'), [], id="invalid-json"),
        pytest.param("Version: {\n" + '    "Name": "HandBrake"\n}\n', [], id="other-blocks-are-skipped"),
        pytest.param(
            "Version: {\n" + '    "Note": "Encoding: task 1 of 1, 5.00 %"\n}\n',
            [],
            id="plain-lookalike-inside-another-block",
        ),
        pytest.param(
            "Progress: {\n" + '    "State": "WORKING", "Working": {"Progress": 0.1\n'
            "Progress: {\n" + '    "State": "WORKING", "Working": {"Progress": 0.2}\n}\n',
            [Progress(percent=20.0, fps=None, eta_seconds=None, pass_number=None, pass_count=None)],
            id="a-new-block-replaces-a-cut-off-one",
        ),
        pytest.param(
            "libdvdread: Encrypted DVD support unavailable.Progress: {\n"
            + '    "State": "WORKDONE", "WorkDone": {"Error": 0}\n}\n',
            [WorkDone(error=0)],
            id="banner-glued-to-the-header",
        ),
    ],
)
def test_blocks(text: str, expected: list[Progress | WorkDone]) -> None:
    assert parse_whole(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "libdvdread: Encrypted DVD support unavailable.************************************************\n"
            "**  No css library available. See             **\n"
            "************************************************\n\n"
            "libdvdread: Can't open file VIDEO_TS.IFO.\n",
            id="banner-only",
        ),
        pytest.param(random.Random(7).randbytes(20_000).decode(errors="replace"), id="random-bytes"),  # noqa: S311
        pytest.param("}\n}\n{\n]]\nProgress: }\n: {\n" * 50, id="stray-braces"),
        pytest.param("Encoding: task x of 1, 5 %\rEncoding: task 1 of 1, %\r", id="broken-plain-lines"),
        pytest.param("Progress: {\n" + '"a": 1,\n' * 5000, id="endless-block"),
    ],
)
def test_garbage_gives_no_events_and_never_raises(text: str) -> None:
    assert parse_whole(text) == []
    assert parse_in_pieces(text, [13] * len(text)) == []


def test_the_real_output_for_an_unreadable_input_gives_no_events() -> None:
    assert parse_whole(recorded("unreadable-input.stdout.txt")) == []


def test_an_endless_line_does_not_grow_the_parser_without_bound() -> None:
    parser = ProgressParser()
    for _ in range(1000):
        parser.feed("x" * 1000)

    assert len(parser._partial_line) <= MAX_LINE_CHARS
    assert parser.feed("\nEncoding: task 1 of 1, 7.00 %\r") == [
        Progress(percent=7.0, fps=None, eta_seconds=None, pass_number=1, pass_count=1)
    ]


def test_progress_after_garbage_is_still_read() -> None:
    garbage = random.Random(3).randbytes(5000).decode(errors="replace")  # noqa: S311
    good = recorded("encode-2s-very-fast-480p30.stdout.txt")

    assert parse_whole(garbage + "\n" + good)[-2:] == parse_whole(good)
