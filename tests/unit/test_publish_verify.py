"""verify(): when an encode counts as whole, and what the operator is told when it does not."""

from __future__ import annotations

from typing import Any

import pytest

from agent.verify import FailureKind, Verification, decode_verdict, source_gone, verify

# A 4 s clip that HandBrakeCLI encoded to a 4.04 s output of 350 kB, reporting success.
GOOD: dict[str, Any] = {
    "exit_code": 0,
    "work_done_error": 0,
    "output_size": 350_000,
    "source_duration": 4.0,
    "output_duration": 4.04,
}


def case(*, ok: bool, says: str, id: str, **changes: Any) -> Any:
    """One row: GOOD with some facts changed, whether it passes, and words its reason must contain."""
    return pytest.param({**GOOD, **changes}, ok, says, id=id)


@pytest.mark.parametrize(
    "facts, ok, says",
    [
        case(ok=True, says="4.0 s long for a 4.0 s source", id="a-finished-encode-of-full-length-is-accepted"),
        case(exit_code=2, ok=False, says="exited with code 2", id="a-non-zero-exit-is-rejected"),
        case(work_done_error=3, ok=False, says="WorkDone error 3", id="exit-0-with-a-workdone-error-is-rejected"),
        case(work_done_error=None, ok=False, says="never reported WorkDone", id="exit-0-without-workdone-is-rejected"),
        case(output_size=0, ok=False, says="output is empty", id="an-empty-output-is-rejected"),
        case(output_duration=2.0, ok=False, says="truncated source?", id="a-truncated-encode-is-rejected"),
        case(output_duration=3.1, ok=True, says="3.1 s long", id="a-short-clip-within-one-second-is-accepted"),
        case(
            source_duration=3600.0, output_duration=3590.0, ok=True, says="3590.0 s", id="a-long-film-within-2pc-passes"
        ),
        case(
            source_duration=3600.0,
            output_duration=3500.0,
            ok=False,
            says="allowed difference 72.0 s",
            id="a-long-film-100-s-short-is-rejected",
        ),
        case(output_duration=9.0, ok=False, says="longer than its source", id="an-output-longer-than-its-source-fails"),
        case(source_duration=None, ok=False, says="source duration is unknown", id="an-unknown-source-length-fails"),
        case(output_duration=None, ok=False, says="output duration is unknown", id="an-unreadable-output-fails"),
        case(output_duration=float("nan"), ok=False, says="output duration is unknown", id="a-nan-duration-fails"),
    ],
)
def test_verify(facts: dict[str, Any], ok: bool, says: str) -> None:
    verification = verify(**facts)

    assert verification.ok is ok
    assert says in verification.reason


def test_a_truncated_encode_is_explained_with_the_numbers() -> None:
    verification = verify(**{**GOOD, "output_duration": 1.0})

    assert verification == Verification(
        ok=False,
        reason="output is 1.0 s long but the source is 4.0 s (allowed difference 1.0 s): truncated source?",
    )


def test_the_first_failing_check_is_the_one_reported() -> None:
    verification = verify(exit_code=1, work_done_error=None, output_size=0, source_duration=None, output_duration=None)

    assert verification.reason == "HandBrakeCLI exited with code 1"


# What HandBrakeCLI 1.6.1 left on a 4 MiB tmpfs with 28 KiB free: exit 0, WorkDone 0, a header
# claiming 3.065 s, but packets only up to 0.69 s, and 28 672 of the 131 369 bytes it muxed.
DISK_FULL: dict[str, Any] = {
    "exit_code": 0,
    "work_done_error": 0,
    "output_size": 28_672,
    "source_duration": 3.0,
    "output_duration": 3.065,
    "output_end": 0.686,
    "muxed_bytes": 131_369,
}
MiB = 1024 * 1024


@pytest.mark.parametrize(
    "facts, ok, kind, says",
    [
        pytest.param(
            {**DISK_FULL, "output_end": 3.04, "output_size": 140_000, "archive_free": 0},
            True,
            FailureKind.COUNTED,
            "3.1 s long for a 3.0 s source",
            id="a-whole-output-passes-even-when-it-filled-the-disk-exactly",
        ),
        pytest.param(
            {**DISK_FULL, "archive_free": 0},
            False,
            FailureKind.TEMPORARY,
            "the archive's disk filled during the encode",
            id="lost-writes-on-a-full-disk-are-temporary",
        ),
        pytest.param(
            {**DISK_FULL, "muxed_bytes": None, "archive_free": 4096},
            False,
            FailureKind.TEMPORARY,
            "last packet ends at 0.7 s of a 3.0 s source",
            id="packets-ending-early-on-a-full-disk-are-temporary-even-without-mux-totals",
        ),
        pytest.param(
            {**DISK_FULL, "output_end": None, "archive_free": 4096},
            False,
            FailureKind.TEMPORARY,
            "HandBrakeCLI muxed 131369",
            id="a-file-smaller-than-its-muxed-payload-on-a-full-disk-is-temporary",
        ),
        pytest.param(
            {**DISK_FULL, "archive_free": 50 * 1024**3},
            False,
            FailureKind.COUNTED,
            "writes were lost",
            id="lost-writes-with-plenty-of-room-are-counted",
        ),
        pytest.param(
            {**DISK_FULL, "muxed_bytes": None, "archive_free": None},
            False,
            FailureKind.COUNTED,
            "the file was cut short",
            id="a-cut-short-file-fails-even-when-free-space-is-unknown",
        ),
        pytest.param(
            {**GOOD, "exit_code": 3, "archive_free": MiB},
            False,
            FailureKind.TEMPORARY,
            "exited with code 3",
            id="any-failure-while-the-disk-is-full-is-temporary",
        ),
    ],
)
def test_what_is_really_in_the_file_decides(facts: dict[str, Any], ok: bool, kind: FailureKind, says: str) -> None:
    verification = verify(**facts)

    assert verification.ok is ok
    if not ok:
        assert verification.kind is kind
    assert says in verification.reason


NO_TITLE_STDERR = (  # HandBrakeCLI 1.6.1 on random bytes named .mkv; it exits 2
    "[12:14:57] hb_stream_open: open rand.mkv failed",
    "[12:14:57] scan: unrecognized file type",
    "[12:14:57] libhb: scan thread found 0 valid title(s)",
    "No title found.",
    "HandBrake has exited.",
)


@pytest.mark.parametrize(
    "facts, kind, says",
    [
        pytest.param(
            {**GOOD, "exit_code": 2, "work_done_error": None, "stderr_tail": NO_TITLE_STDERR},
            FailureKind.PERMANENT,
            "found no title",
            id="no-title-is-permanent",
        ),
        pytest.param(
            {**GOOD, "exit_code": 2, "work_done_error": None, "stderr_tail": NO_TITLE_STDERR[-3:-1]},
            FailureKind.PERMANENT,
            "found no title",
            id="no-title-in-a-short-tail-is-permanent",
        ),
        pytest.param(
            {**GOOD, "exit_code": 2, "stderr_tail": ("ERROR: Invalid option",)},
            FailureKind.COUNTED,
            "exited with code 2",
            id="another-exit-2-is-counted",
        ),
        pytest.param(
            {**GOOD, "exit_code": 3, "stderr_tail": ()},
            FailureKind.COUNTED,
            "exited with code 3",
            id="a-crash-is-counted",
        ),
        pytest.param(
            {**GOOD, "exit_code": 2, "stderr_tail": NO_TITLE_STDERR, "archive_free": 0},
            FailureKind.PERMANENT,
            "found no title",
            id="no-title-on-a-full-disk-is-still-permanent",
        ),
    ],
)
def test_failure_kinds(facts: dict[str, Any], kind: FailureKind, says: str) -> None:
    verification = verify(**facts)

    assert (verification.ok, verification.kind) == (False, kind)
    assert says in verification.reason


@pytest.mark.parametrize(
    "when, library_readable, kind, says",
    [
        pytest.param(
            "start", True, FailureKind.PERMANENT, "deleted or moved when its encode started", id="gone-at-start"
        ),
        pytest.param("end", True, FailureKind.PERMANENT, "deleted or moved during its encode", id="gone-at-end"),
        pytest.param("start", False, FailureKind.TEMPORARY, "missing mount", id="gone-with-its-mount-at-start"),
        pytest.param("end", False, FailureKind.TEMPORARY, "missing mount", id="gone-with-its-mount-at-end"),
    ],
)
def test_a_vanished_source(when: str, library_readable: bool, kind: FailureKind, says: str) -> None:
    verification = source_gone(when=when, library_readable=library_readable)

    assert (verification.ok, verification.kind) == (False, kind)
    assert says in verification.reason


@pytest.mark.parametrize(
    "exit_code, errors, fails, says",
    [
        pytest.param(0, (), False, "", id="a-clean-decode-passes"),
        pytest.param(
            0,
            ("[h264 @ 0x1] error while decoding MB 3 7",),
            True,
            "error while decoding MB 3 7",
            id="an-error-line-fails-even-with-exit-0",
        ),
        pytest.param(1, (), True, "ffmpeg exit code 1): no message", id="a-failed-ffmpeg-without-a-word-fails"),
    ],
)
def test_the_decode_check_fails_an_output_that_does_not_decode_cleanly(
    exit_code: int, errors: tuple[str, ...], fails: bool, says: str
) -> None:
    verdict = decode_verdict(exit_code=exit_code, errors=errors)

    if not fails:
        assert verdict is None
        return
    assert verdict is not None and not verdict.ok
    assert "does not decode cleanly" in verdict.reason and says in verdict.reason
    assert verdict.kind is FailureKind.COUNTED  # a new encode may come out whole
