"""Who may keep hb2r's state in a folder: a decision table over owners and modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.store.private import folder_problem

STATE = Path("/var/lib/hb2r")
HB2R_UID = 998


def problem(*, owner_uid: int, mode: int, runner_uid: int, inside: Path | None = None) -> str | None:
    names = {0: "root", HB2R_UID: "hb2r", 65534: "nobody"}
    folder = STATE if inside is None else Path("/var/lib")
    return folder_problem(
        folder=folder,
        owner=names[owner_uid],
        owner_uid=owner_uid,
        mode=mode,
        runner=names[runner_uid],
        runner_uid=runner_uid,
        inside=inside,
    )


@pytest.mark.parametrize(
    ("owner_uid", "mode", "runner_uid", "says"),
    [
        pytest.param(HB2R_UID, 0o40700, HB2R_UID, None, id="the-agents-own-private-folder"),
        pytest.param(HB2R_UID, 0o40750, HB2R_UID, None, id="readable-by-its-group-is-fine"),
        pytest.param(0, 0o40700, 0, None, id="root-in-roots-folder"),
        pytest.param(0, 0o40755, HB2R_UID, None, id="a-root-folder-may-be-used-by-whoever-can"),
        pytest.param(
            HB2R_UID,
            0o40700,
            0,
            "state_dir /var/lib/hb2r belongs to user hb2r, not to root who runs this hb2r; "
            "run hb2r as hb2r (e.g. `runuser -u hb2r -- hb2r ...`)",
            id="root-in-the-agents-folder-is-refused",
        ),
        pytest.param(65534, 0o40700, HB2R_UID, "belongs to user nobody, not to hb2r", id="another-users-folder"),
        pytest.param(HB2R_UID, 0o40770, HB2R_UID, "is writable by its group (mode 0770)", id="group-writable"),
        pytest.param(HB2R_UID, 0o40702, HB2R_UID, "is writable by others (mode 0702)", id="world-writable"),
        pytest.param(HB2R_UID, 0o41777, HB2R_UID, "its group and others (mode 1777)", id="sticky-is-not-enough"),
    ],
)
def test_the_state_folder(owner_uid: int, mode: int, runner_uid: int, says: str | None) -> None:
    answer = problem(owner_uid=owner_uid, mode=mode, runner_uid=runner_uid)

    if says is None:
        assert answer is None
    else:
        assert answer is not None and says in answer


@pytest.mark.parametrize(
    ("owner_uid", "mode", "says"),
    [
        pytest.param(0, 0o40755, None, id="a-root-parent"),
        pytest.param(HB2R_UID, 0o40755, None, id="the-runners-own-parent"),
        pytest.param(0, 0o41777, None, id="a-sticky-world-writable-parent-like-tmp"),
        pytest.param(65534, 0o40755, "which belongs to user nobody, who could swap it", id="another-users-parent"),
        pytest.param(0, 0o40777, "writable by its group and others without the sticky bit", id="world-writable-parent"),
    ],
)
def test_the_folders_above_it(owner_uid: int, mode: int, says: str | None) -> None:
    answer = problem(owner_uid=owner_uid, mode=mode, runner_uid=HB2R_UID, inside=STATE)

    if says is None:
        assert answer is None
    else:
        assert answer is not None and says in answer
        assert answer.startswith("state_dir /var/lib/hb2r is inside /var/lib")
