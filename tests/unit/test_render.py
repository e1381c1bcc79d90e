"""What a person reads from `hb2r plan` (text) and what a script reads from `hb2r plan --json`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.config.models import Config
from agent.domain import (
    Action,
    Adopt,
    ArchiveObservation,
    Drift,
    DriftReason,
    LibraryObservation,
    Observation,
    PauseLibrary,
    Plan,
    RenameOutput,
    Skip,
    SourceFile,
    SourceStatus,
    Transcode,
    TranscodeReason,
    UserChange,
    UserChangeKind,
    Wait,
)
from agent.queued_plan import QueuedPlan
from agent.render import render_text, summary, to_json

PASSWORD_HASH = "$2b$12$" + "Q" * 53

CONFIG = Config.model_validate(
    {
        "version": 1,
        "paths": {"archive": "/archive"},
        "libraries": [
            {"name": "tv", "source": "/src/tv", "output": "TV", "preset": "tv"},
            {"name": "movies", "source": "/src/movies", "output": "Movies", "preset": "tv"},
        ],
        "presets": {"tv": {"handbrake": "Fast 1080p30"}},
        "users": [{"name": "kim", "role": "admin", "password_hash": PASSWORD_HASH}],
    },
    context={"base_dir": "/"},
)


def _file(rel_path: str, *, size: int = 1000) -> SourceFile:
    return SourceFile(rel_path, size, 1, 1, None)


def _transcode(rel_path: str, library: str = "tv") -> Transcode:
    output = ("TV/" if library == "tv" else "Movies/") + rel_path.rsplit(".", 1)[0] + ".mkv"
    return Transcode(library, _file(rel_path), output, TranscodeReason.NEW)


def _rename(rel_path: str = "Show/Pilot.mkv") -> RenameOutput:
    return RenameOutput("tv", _file(rel_path), "Show/S01E01.mkv", "TV/Show/S01E01.mkv", f"TV/{rel_path}")


def _wait(rel_path: str, seconds: float = 30.0, library: str = "tv") -> Wait:
    return Wait(library, rel_path, seconds)


ADD_KIM = UserChange(UserChangeKind.ADD, "kim", "admin", PASSWORD_HASH)
PAUSE_MOVIES = PauseLibrary("movies", "source folder missing: /src/movies (not mounted?)")


SUMMARY_CASES = [
    pytest.param(
        [_transcode("a.mkv"), _transcode("b.mkv"), _rename(), _wait("c"), _wait("d"), _wait("e"), PAUSE_MOVIES],
        "Plan: 2 to transcode, 1 to rename, 3 waiting, 1 library paused.",
        id="counts-each-kind-of-action-in-one-sentence",
    ),
    pytest.param([], "Plan: in sync, nothing to do.", id="empty-plan-says-in-sync"),
    pytest.param(
        [PAUSE_MOVIES, PauseLibrary("tv", "archive unavailable")],
        "Plan: 2 libraries paused.",
        id="two-paused-libraries-are-plural",
    ),
    pytest.param([ADD_KIM], "Plan: 1 user change.", id="one-user-change-is-singular"),
    pytest.param(
        [ADD_KIM, UserChange(UserChangeKind.REMOVE, "old", "user")], "Plan: 2 user changes.", id="user-changes-plural"
    ),
    pytest.param(
        [
            Skip("tv", "x.mkv", "empty file (0 bytes)"),
            Drift("tv", "a.mkv", "TV/a.mkv", DriftReason.PRESET_CHANGED),
            Adopt("tv", _file("b.mkv"), "TV/b.mkv"),
            Skip("tv", "y.mkv", "empty file (0 bytes)"),
        ],
        "Plan: 1 to adopt, 1 drifted, 2 skipped.",
        id="reports-are-counted-in-a-fixed-order-whatever-the-plan-order",
    ),
]


@pytest.mark.parametrize(("actions", "expected"), SUMMARY_CASES)
def test_summary_says_what_the_plan_holds_in_one_line(actions: list[Action], expected: str) -> None:
    assert summary(QueuedPlan(Plan(tuple(actions)))) == expected


def _observation() -> Observation:
    return Observation(
        libraries={
            "tv": LibraryObservation("tv", SourceStatus.OK, files=(_file("a.mkv"), _file("Show/Pilot.mkv"))),
            "movies": LibraryObservation("movies", SourceStatus.MISSING, detail="no such folder"),
        },
        archive=ArchiveObservation(True, frozenset({"TV/Show/S01E01.mkv"}), frozenset({"TV"})),
    )


def test_text_groups_actions_under_their_library_and_shows_a_paused_one() -> None:
    plan = Plan((_transcode("a.mkv"), _rename(), PAUSE_MOVIES, ADD_KIM))

    lines = render_text(QueuedPlan(plan), CONFIG, _observation()).splitlines()

    assert lines == [
        "tv (/src/tv -> /archive/TV, 2 files)",
        "  + transcode a.mkv -> TV/a.mkv (new)",
        "  > rename    TV/Show/S01E01.mkv -> TV/Show/Pilot.mkv (source now Show/Pilot.mkv)",
        "movies: PAUSED, source folder missing: /src/movies (not mounted?)",
        "users",
        "  + add       kim (admin)",
        "Plan: 1 to transcode, 1 to rename, 1 library paused, 1 user change.",
    ]


def test_text_says_in_sync_for_a_library_with_nothing_to_do() -> None:
    observation = Observation(
        libraries={
            "tv": LibraryObservation("tv", SourceStatus.OK, files=(_file("a.mkv"), _file("b.mkv"))),
            "movies": LibraryObservation("movies", SourceStatus.OK),
        },
        archive=ArchiveObservation(True, frozenset({"TV/a.mkv", "TV/b.mkv"}), frozenset({"TV", "Movies"})),
    )

    text = render_text(QueuedPlan(Plan(())), CONFIG, observation)

    assert text == (
        "tv (/src/tv -> /archive/TV, 2 files): in sync\n"
        "movies (/src/movies -> /archive/Movies, 0 files): in sync\n"
        "Plan: in sync, nothing to do.\n"
    )


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        pytest.param(0.2, "stable in 1s", id="a-fraction-of-a-second-rounds-up-to-1s"),
        pytest.param(45.0, "stable in 45s", id="under-a-minute-in-seconds"),
        pytest.param(90.0, "stable in 1m30s", id="over-a-minute-in-minutes-and-seconds"),
    ],
)
def test_waiting_file_shows_when_it_will_be_picked_up(seconds: float, shown: str) -> None:
    text = render_text(QueuedPlan(Plan((_wait("a.mkv", seconds),))), CONFIG, _observation())

    assert f"  . wait      a.mkv (changed recently; {shown})" in text.splitlines()


def test_text_never_shows_a_password_hash() -> None:
    text = render_text(QueuedPlan(Plan((ADD_KIM,))), CONFIG, _observation())

    assert PASSWORD_HASH not in text
    assert "$2b$" not in text


EVERY_KIND = Plan(
    (
        _transcode("a.mkv"),
        _rename(),
        Adopt("tv", _file("b.mkv", size=5), "TV/b.mkv"),
        _wait("c.mkv", 12.34567),
        Drift("tv", "d.mkv", "TV/d.mkv", DriftReason.SOURCE_VANISHED),
        Skip("tv", "e.mkv", "empty file (0 bytes)"),
        PAUSE_MOVIES,
        ADD_KIM,
    )
)


def test_json_has_pending_summary_counts_and_one_object_per_action() -> None:
    data = to_json(QueuedPlan(EVERY_KIND))

    assert set(data) == {"pending", "summary", "actions"}
    assert data["pending"] is True
    assert data["summary"] == {
        "transcode": 1,
        "queued": 0,
        "running": 0,
        "failed": 0,
        "dead": 0,
        "cancelled": 0,
        "copy": 0,
        "rename": 1,
        "adopt": 1,
        "wait": 1,
        "drift": 1,
        "skip": 1,
        "paused": 1,
        "user": 1,
    }
    assert [action["kind"] for action in data["actions"]] == [
        "transcode",
        "rename",
        "adopt",
        "wait",
        "drift",
        "skip",
        "pause",
        "user",
    ]


ACTION_JSON_CASES: list[Any] = [
    pytest.param(
        _transcode("a.mkv"),
        {
            "kind": "transcode",
            "library": "tv",
            "path": "a.mkv",
            "size": 1000,
            "output": "TV/a.mkv",
            "reason": "new",
            "job": None,
        },
        id="transcode-names-source-output-size-and-reason",
    ),
    pytest.param(
        _rename(),
        {
            "kind": "rename",
            "library": "tv",
            "path": "Show/Pilot.mkv",
            "size": 1000,
            "output": "TV/Show/Pilot.mkv",
            "from_path": "Show/S01E01.mkv",
            "from_output": "TV/Show/S01E01.mkv",
        },
        id="rename-names-both-the-old-and-new-paths",
    ),
    pytest.param(
        _wait("c.mkv", 12.34567),
        {"kind": "wait", "library": "tv", "path": "c.mkv", "stable_in_seconds": 12.346},
        id="wait-gives-seconds-to-stable-rounded-to-milliseconds",
    ),
    pytest.param(
        Drift("tv", "d.mkv", "TV/d.mkv", DriftReason.SOURCE_VANISHED),
        {"kind": "drift", "library": "tv", "path": "d.mkv", "output": "TV/d.mkv", "reason": "source vanished"},
        id="drift-names-the-kept-output-and-why",
    ),
    pytest.param(
        PAUSE_MOVIES,
        {"kind": "pause", "library": "movies", "reason": "source folder missing: /src/movies (not mounted?)"},
        id="pause-names-the-library-and-the-cause",
    ),
    pytest.param(
        ADD_KIM,
        {"kind": "user", "change": "add", "name": "kim", "role": "admin"},
        id="user-change-names-the-user-and-role-but-no-hash",
    ),
]


@pytest.mark.parametrize(("action", "expected"), ACTION_JSON_CASES)
def test_json_action_objects_carry_what_a_script_needs(action: Action, expected: dict[str, Any]) -> None:
    assert to_json(QueuedPlan(Plan((action,))))["actions"] == [expected]


def test_json_is_serialisable_and_never_contains_a_password_hash() -> None:
    plan = Plan((ADD_KIM, UserChange(UserChangeKind.UPDATE, "ann", "user", "$2b$12$" + "Z" * 53)))

    dumped = json.dumps(to_json(QueuedPlan(plan)))

    assert PASSWORD_HASH not in dumped
    assert "$2b$" not in dumped
    assert "password" not in dumped


@pytest.mark.parametrize(
    ("actions", "pending"),
    [
        pytest.param([PAUSE_MOVIES, Skip("tv", "x", "empty file (0 bytes)")], False, id="reports-only-are-not-pending"),
        pytest.param([_wait("a.mkv")], True, id="a-waiting-file-is-pending"),
    ],
)
def test_json_pending_matches_the_exit_code_rule(actions: list[Action], pending: bool) -> None:
    assert to_json(QueuedPlan(Plan(tuple(actions))))["pending"] is pending


def test_text_shows_every_hostile_name_and_message_on_one_inert_line() -> None:
    evil = "a\nb\x1b[31m\u202e.mkv"
    quoted = '"a\\nb\\x1b[31m\\u202e.mkv"'
    plan = Plan(
        (
            _transcode(evil),
            RenameOutput("tv", _file(evil), "old\n.mkv", "TV/old\n.mkv", f"TV/{evil}"),
            Adopt("tv", _file(evil), f"TV/{evil}"),
            _wait(evil),
            Drift("tv", evil, f"TV/{evil}", DriftReason.SOURCE_VANISHED),
            Skip("tv", evil, f"its output TV/{evil} already belongs to x\x1b[2J.mkv"),
            PauseLibrary("movies", "source folder unreadable: /src/movies: \x1b[2J\nPermission denied"),
        )
    )

    lines = render_text(QueuedPlan(plan), CONFIG, _observation()).splitlines()

    assert lines == [
        "tv (/src/tv -> /archive/TV, 2 files)",
        f'  + transcode {quoted} -> "TV/{quoted[1:]} (new)',
        f'  > rename    "TV/old\\n.mkv" -> "TV/{quoted[1:]} (source now {quoted})',
        f'  = adopt     {quoted} ("TV/{quoted[1:]} already exists; recorded, not re-encoded)',
        f"  . wait      {quoted} (changed recently; stable in 30s)",
        f'  ~ drift     {quoted} (source vanished; output kept: "TV/{quoted[1:]})',
        f"  ! skip      {quoted} (its output TV/a\\nb\\x1b[31m\\u202e.mkv already belongs to x\\x1b[2J.mkv)",
        "movies: PAUSED, source folder unreadable: /src/movies: \\x1b[2J\\nPermission denied",
        "Plan: 1 to transcode, 1 to rename, 1 to adopt, 1 waiting, 1 drifted, 1 skipped, 1 library paused.",
    ]
