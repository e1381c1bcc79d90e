"""Decision table: a library renamed in the config carries its ledger over.

The ledger names files by library; after `name: tv` becomes `name: series` (same source, same
output folder) every recorded file has an entry under a name no longer configured. Those
entries are the renamed library's own outputs: same content -> carried over (an Adopt naming
the old library, recorded once, no encode), changed content -> encoded again, replacing the
output hb2r made. Nothing may stay "adopt" pass after pass.
"""

from __future__ import annotations

import dataclasses

import pytest

from agent.config.models import Config
from agent.domain import Action, Adopt, Ledger, Observation, SourceFile, Transcode, TranscodeReason
from agent.plan import fingerprints_needed
from tests.support.plan_builders import (
    EPISODE,
    EPISODE_OUT,
    MB,
    NOW,
    _assert_actions,
    _carry_out,
    _config,
    _disk,
    _done,
    _file,
    _ledger,
    _library,
    _plan,
    _tv,
    planner,  # noqa: F401 - the autouse fixture: every test runs whole and folder by folder
)

SERIES = _config(_library("series", source="/src/tv", output="TV", preset="tv"))
CHANGED = _file(EPISODE.rel_path, size=2 * MB, age=600, fingerprint="fp:recut")
TOUCHED = _file(EPISODE.rel_path, age=600, fingerprint=EPISODE.fingerprint)  # same bytes, new mtime


def _observed(*files: SourceFile, outputs: tuple[str, ...] = (EPISODE_OUT,)) -> Observation:
    """What a scan of the renamed library sees: the files of `tv`, now under the name `series`."""
    return _disk(libraries={"series": dataclasses.replace(_tv(*files), library="series")}, outputs=outputs)


@pytest.mark.parametrize(
    "config, disk, ledger, expected",
    [
        pytest.param(
            SERIES,
            _observed(EPISODE),
            _ledger(_done(EPISODE)),
            [Adopt("series", EPISODE, EPISODE_OUT, from_library="tv")],
            id="renamed-library-carries-over-an-unchanged-file",
        ),
        pytest.param(
            SERIES,
            _observed(TOUCHED),
            _ledger(_done(EPISODE)),
            [Adopt("series", TOUCHED, EPISODE_OUT, from_library="tv")],
            id="renamed-library-carries-over-a-touched-file-with-the-same-fingerprint",
        ),
        pytest.param(
            SERIES,
            _observed(CHANGED),
            _ledger(_done(EPISODE)),
            [Transcode("series", CHANGED, EPISODE_OUT, TranscodeReason.CHANGED)],
            id="renamed-library-re-encodes-a-changed-file",
        ),
        pytest.param(
            SERIES,
            _observed(EPISODE, outputs=()),
            _ledger(_done(EPISODE)),
            [Transcode("series", EPISODE, EPISODE_OUT, TranscodeReason.NEW)],
            id="renamed-library-encodes-a-file-whose-output-is-gone",
        ),
    ],
)
def test_renamed_library(config: Config, disk: Observation, ledger: Ledger, expected: list[Action]) -> None:
    _assert_actions(_plan(config, disk, ledger), expected)


def test_a_changed_file_of_a_renamed_library_has_its_fingerprint_read() -> None:
    changed = CHANGED._replace(fingerprint=None)
    assert fingerprints_needed(SERIES, _observed(changed), _ledger(_done(EPISODE)), now_ns=NOW) == {
        ("series", EPISODE.rel_path)
    }


def test_a_renamed_library_is_in_sync_once_its_ledger_is_carried_over() -> None:
    disk, ledger = _observed(EPISODE), _ledger(_done(EPISODE))
    first = _plan(SERIES, disk, ledger)
    disk, ledger = _carry_out(SERIES, first, disk, ledger)
    assert _plan(SERIES, disk, ledger).actions == ()
