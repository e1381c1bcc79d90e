"""Publishing into a real archive tree: whole files only, nobody's file clobbered, nothing outside touched."""

from __future__ import annotations

import codecs
import errno
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.publish import (
    PARTIAL_DIR,
    PublishConflict,
    UnsafePath,
    clean_partials,
    discard_partial,
    ensure_ignore_listed,
    instance_tag,
    is_inside_archive,
    move_output,
    partial_path,
    prepare_partial_dir,
    publish,
)
from agent.verify import verify
from tests.support.clips import make_clip, probed_duration

ENCODE = b"\x1a\x45\xdf\xa3 a whole, verified encode"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "archive"
    path.mkdir()
    return path


def encoded(archive: Path, *, job_id: int = 7, content: bytes = ENCODE) -> Path:
    """Return a finished temp file of a job, where HandBrakeCLI would have written it."""
    prepare_partial_dir(archive)
    temp = partial_path(archive, job_id=job_id, extension=".mkv")
    temp.write_bytes(content)
    return temp


def put(root: Path, rel_path: str, content: bytes) -> Path:
    path = root / rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def tree(root: Path) -> dict[str, bytes]:
    """Return every file under root (relative path -> content), to show what changed."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


# --- publish -----------------------------------------------------------------------------------


def test_the_temp_file_is_written_in_the_partial_folder_named_after_its_job(archive: Path) -> None:
    assert partial_path(archive, job_id=42, extension=".mp4") == archive / ".hb2r-partial" / "42.mp4"


def test_publish_creates_the_parent_folders_and_moves_the_whole_file(archive: Path) -> None:
    temp = encoded(archive)
    final = archive / "TV" / "Show" / "Season 1" / "S01E01.mkv"

    publish(temp, final, may_replace=False)

    assert final.read_bytes() == ENCODE
    assert not temp.exists()
    assert tree(archive) == {"TV/Show/Season 1/S01E01.mkv": ENCODE}


def test_publish_onto_a_file_hb2r_did_not_make_raises_and_touches_neither(archive: Path) -> None:
    final = put(archive, "TV/S01E01.mkv", b"the user's own file")
    temp = encoded(archive)

    with pytest.raises(PublishConflict, match="already exists"):
        publish(temp, final, may_replace=False)

    assert final.read_bytes() == b"the user's own file"
    assert temp.read_bytes() == ENCODE


def test_publish_replaces_an_output_hb2r_made_when_allowed(archive: Path) -> None:
    final = put(archive, "TV/S01E01.mkv", b"hb2r's older encode")
    temp = encoded(archive)

    publish(temp, final, may_replace=True)

    assert final.read_bytes() == ENCODE
    assert not temp.exists()


def test_a_folder_at_the_final_path_is_never_replaced(archive: Path) -> None:
    put(archive, "TV/S01E01.mkv/inside.txt", b"a folder someone made")
    temp = encoded(archive)

    with pytest.raises(PublishConflict, match="is a folder"):
        publish(temp, archive / "TV" / "S01E01.mkv", may_replace=True)

    assert (archive / "TV/S01E01.mkv/inside.txt").read_bytes() == b"a folder someone made"
    assert temp.read_bytes() == ENCODE


def test_on_a_file_system_without_hard_links_publish_still_refuses_to_clobber(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_hard_links(*arguments: Any, **options: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    taken = put(archive, "TV/taken.mkv", b"the user's own file")
    temp = encoded(archive, job_id=1)

    with pytest.raises(PublishConflict):
        publish(temp, taken, may_replace=False)
    publish(temp, archive / "TV" / "free.mkv", may_replace=False)

    assert taken.read_bytes() == b"the user's own file"
    assert (archive / "TV" / "free.mkv").read_bytes() == ENCODE


@pytest.mark.parametrize("may_replace", [False, True], ids=["new-output", "replacing-output"])
def test_a_partial_folder_on_another_file_system_is_named_as_the_cause(
    archive: Path, monkeypatch: pytest.MonkeyPatch, may_replace: bool
) -> None:
    def cross_device(*arguments: Any, **options: Any) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    monkeypatch.setattr(os, "replace", cross_device)
    temp = encoded(archive)

    with pytest.raises(OSError, match="different file systems") as raised:
        publish(temp, archive / "TV" / "S01E01.mkv", may_replace=may_replace)

    assert raised.value.errno == errno.EXDEV
    assert temp.read_bytes() == ENCODE
    assert not (archive / "TV" / "S01E01.mkv").exists()


# --- Resilio's IgnoreList ----------------------------------------------------------------------


def test_without_a_resilio_share_no_ignore_list_is_written(archive: Path) -> None:
    folder = prepare_partial_dir(archive)

    assert folder == archive / PARTIAL_DIR
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert ensure_ignore_listed(archive) is False
    assert not (archive / ".sync").exists()


def test_in_a_share_without_an_ignore_list_one_is_created(archive: Path) -> None:
    (archive / ".sync").mkdir()

    prepare_partial_dir(archive)

    assert (archive / ".sync" / "IgnoreList").read_bytes() == b".hb2r-partial\n"
    assert ensure_ignore_listed(archive) is False
    assert (archive / ".sync" / "IgnoreList").read_bytes() == b".hb2r-partial\n"


@pytest.mark.parametrize(
    "before, after",
    [
        pytest.param(
            codecs.BOM_UTF8 + b"# Resilio defaults\r\n.DS_Store\r\n*.!sync\r\nFilme \xc3\xa4lter",
            codecs.BOM_UTF8 + b"# Resilio defaults\r\n.DS_Store\r\n*.!sync\r\nFilme \xc3\xa4lter\r\n.hb2r-partial\r\n",
            id="windows-style-list-with-bom-keeps-bom-and-crlf",
        ),
        pytest.param(
            b".DS_Store\n*.!sync\n",
            b".DS_Store\n*.!sync\n.hb2r-partial\n",
            id="unix-style-list-gets-one-more-line",
        ),
        pytest.param(
            codecs.BOM_UTF8 + b".hb2r-partial\r\n.DS_Store\r\n",
            codecs.BOM_UTF8 + b".hb2r-partial\r\n.DS_Store\r\n",
            id="a-list-that-already-has-the-line-is-left-alone",
        ),
    ],
)
def test_an_existing_ignore_list_is_amended_keeping_its_lines_bom_and_line_endings(
    archive: Path, before: bytes, after: bytes
) -> None:
    ignore_list = put(archive, ".sync/IgnoreList", before)
    ignore_list.chmod(0o640)

    changed = ensure_ignore_listed(archive)
    changed_again = ensure_ignore_listed(archive)

    assert (changed, changed_again) == (before != after, False)
    assert ignore_list.read_bytes() == after
    assert stat.S_IMODE(ignore_list.stat().st_mode) == 0o640
    assert os.listdir(archive / ".sync") == ["IgnoreList"]  # no temp file left behind


# --- clean_partials ----------------------------------------------------------------------------


def test_clean_partials_removes_only_what_is_inside_the_partial_folder(archive: Path, tmp_path: Path) -> None:
    outside = put(tmp_path, "elsewhere/precious.mkv", b"not hb2r's")
    put(archive, "TV/S01E01.mkv", b"published output")
    put(archive, ".sync/IgnoreList", b".hb2r-partial\n")
    first = encoded(archive, job_id=1)
    second = encoded(archive, job_id=2)
    (archive / PARTIAL_DIR / "link.mkv").symlink_to(outside)
    put(archive, f"{PARTIAL_DIR}/a folder/kept.txt", b"hb2r makes no folders here")

    removed = clean_partials(archive)

    assert removed == [first, second, archive / PARTIAL_DIR / "link.mkv"]
    assert tree(archive) == {
        ".hb2r-partial/a folder/kept.txt": b"hb2r makes no folders here",
        ".sync/IgnoreList": b".hb2r-partial\n",
        "TV/S01E01.mkv": b"published output",
    }
    assert outside.read_bytes() == b"not hb2r's"


def test_clean_partials_of_one_agent_removes_its_own_and_untagged_temp_files_only(archive: Path) -> None:
    mine = put(archive, f"{PARTIAL_DIR}/0badcafe-1.mkv", b"this agent's")
    untagged = put(archive, f"{PARTIAL_DIR}/7.mkv", b"from before temp names were tagged")
    put(archive, f"{PARTIAL_DIR}/feedf00d-1.mkv", b"another agent's, still encoding")

    removed = clean_partials(archive, instance="0badcafe")

    assert removed == [mine, untagged]
    assert tree(archive) == {".hb2r-partial/feedf00d-1.mkv": b"another agent's, still encoding"}


def test_clean_partials_of_one_host_leaves_another_hosts_temp_files_alone(archive: Path) -> None:
    # Two hosts share the archive; both may have the same instance tag (same hostname and path).
    mine = put(archive, f"{PARTIAL_DIR}/alpha-0badcafe-3-12.mkv", b"alpha's, left by a crash")
    earlier = put(archive, f"{PARTIAL_DIR}/0badcafe-1.mkv", b"alpha's, named by an earlier hb2r")
    put(archive, f"{PARTIAL_DIR}/beta-0badcafe-4-13.mkv", b"beta's, still encoding")
    put(archive, f"{PARTIAL_DIR}/alpha-beta-0badcafe-5-14.mkv", b"host alpha-beta's")

    removed = clean_partials(archive, instance="0badcafe", host="alpha")

    assert removed == [earlier, mine]
    assert set(tree(archive)) == {".hb2r-partial/beta-0badcafe-4-13.mkv", ".hb2r-partial/alpha-beta-0badcafe-5-14.mkv"}


def test_a_temp_file_names_its_host_job_and_token(tmp_path: Path) -> None:
    path = partial_path(tmp_path, job_id=3, extension=".mkv", instance="0badcafe", host="alpha", token=12)
    assert path == tmp_path / PARTIAL_DIR / "alpha-0badcafe-3-12.mkv"


def test_each_state_folder_tags_its_temp_files_differently(tmp_path: Path) -> None:
    first, second = instance_tag(tmp_path / "first"), instance_tag(tmp_path / "second")

    assert first != second and first == instance_tag(tmp_path / "first")
    assert partial_path(tmp_path, job_id=1, extension=".mkv", instance=first).name == f"{first}-1.mkv"


def test_clean_partials_without_a_partial_folder_removes_nothing(archive: Path) -> None:
    put(archive, "TV/S01E01.mkv", b"published output")

    assert clean_partials(archive) == []
    assert tree(archive) == {"TV/S01E01.mkv": b"published output"}


def test_a_partial_folder_that_is_a_link_elsewhere_is_neither_cleaned_nor_used(archive: Path, tmp_path: Path) -> None:
    precious = put(tmp_path, "home/precious.mkv", b"someone's file")
    (archive / PARTIAL_DIR).symlink_to(tmp_path / "home")

    with pytest.raises(UnsafePath):
        clean_partials(archive)
    with pytest.raises(UnsafePath):
        prepare_partial_dir(archive)

    assert precious.read_bytes() == b"someone's file"


# --- move_output -------------------------------------------------------------------------------


def test_move_output_moves_the_file_into_new_folders(archive: Path) -> None:
    put(archive, "TV/Show/S01E01.mkv", ENCODE)
    put(archive, "TV/Show/S01E02.mkv", b"another episode")

    move_output(archive, "TV/Show/S01E01.mkv", "TV/Show (2019)/Season 1/S01E01.mkv")

    assert tree(archive) == {"TV/Show (2019)/Season 1/S01E01.mkv": ENCODE, "TV/Show/S01E02.mkv": b"another episode"}


def test_move_output_removes_the_folders_it_empties_but_not_the_output_folder(archive: Path) -> None:
    put(archive, "TV/Old Name/Season 1/S01E01.mkv", ENCODE)

    move_output(archive, "TV/Old Name/Season 1/S01E01.mkv", "TV/New Name/Season 1/S01E01.mkv")

    assert sorted(str(path.relative_to(archive)) for path in archive.rglob("*")) == [
        "TV",
        "TV/New Name",
        "TV/New Name/Season 1",
        "TV/New Name/Season 1/S01E01.mkv",
    ]
    move_output(archive, "TV/New Name/Season 1/S01E01.mkv", "Films/S01E01.mkv")
    assert sorted(str(path.relative_to(archive)) for path in archive.rglob("*")) == ["Films", "Films/S01E01.mkv", "TV"]


def test_move_output_refuses_to_clobber_a_file_hb2r_did_not_make(archive: Path) -> None:
    put(archive, "TV/old.mkv", ENCODE)
    put(archive, "TV/new.mkv", b"the user's own file")

    with pytest.raises(PublishConflict):
        move_output(archive, "TV/old.mkv", "TV/new.mkv")

    assert tree(archive) == {"TV/old.mkv": ENCODE, "TV/new.mkv": b"the user's own file"}


def test_move_output_replaces_its_own_output_when_allowed(archive: Path) -> None:
    put(archive, "TV/old.mkv", ENCODE)
    put(archive, "TV/new.mkv", b"hb2r's stale encode")

    move_output(archive, "TV/old.mkv", "TV/new.mkv", may_replace=True)

    assert tree(archive) == {"TV/new.mkv": ENCODE}


def test_a_move_whose_old_name_cannot_be_removed_is_undone(archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = put(archive, "TV/read-only folder/old.mkv", ENCODE)
    real_unlink = os.unlink

    def unlink(path: Any, *arguments: Any, **options: Any) -> None:
        if Path(path) == old:  # as root, a read-only folder would not stop it: simulate one
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_unlink(path, *arguments, **options)

    monkeypatch.setattr(os, "unlink", unlink)

    with pytest.raises(PermissionError):
        move_output(archive, "TV/read-only folder/old.mkv", "TV/new.mkv")

    assert tree(archive) == {"TV/read-only folder/old.mkv": ENCODE}


def test_move_output_of_a_vanished_output_raises_file_not_found(archive: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gone"):
        move_output(archive, "TV/old.mkv", "TV/new.mkv")

    assert tree(archive) == {}


# --- paths that lead out of the archive --------------------------------------------------------


@pytest.fixture
def escape_routes(archive: Path, tmp_path: Path) -> Path:
    """An archive with a link `TV` to a folder outside it; return that outside folder."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (archive / "TV").symlink_to(outside)
    return outside


@pytest.mark.parametrize(
    "final",
    [
        pytest.param("../outside/S01E01.mkv", id="dot-dot"),
        pytest.param("TV/S01E01.mkv", id="through-a-symlinked-folder"),
        pytest.param(f"{PARTIAL_DIR}/S01E01.mkv", id="into-the-partial-folder"),
        pytest.param(".sync/S01E01.mkv", id="into-resilios-folder"),
    ],
)
def test_publish_refuses_a_final_path_out_of_the_archive(archive: Path, escape_routes: Path, final: str) -> None:
    temp = encoded(archive)

    with pytest.raises(UnsafePath):
        publish(temp, archive / final, may_replace=True)

    assert temp.read_bytes() == ENCODE
    assert list(escape_routes.iterdir()) == []
    assert not (archive / ".sync").exists()


def test_publish_refuses_a_temp_file_outside_the_partial_folder(archive: Path) -> None:
    stray = put(archive, "TV/stray.mkv", ENCODE)

    with pytest.raises(UnsafePath, match=PARTIAL_DIR):
        publish(stray, archive / "TV" / "S01E01.mkv", may_replace=False)

    assert tree(archive) == {"TV/stray.mkv": ENCODE}


@pytest.mark.parametrize(
    "old, new",
    [
        pytest.param("Films/a.mkv", "../outside/a.mkv", id="moving-out-with-dot-dot"),
        pytest.param("Films/a.mkv", "TV/a.mkv", id="moving-out-through-a-symlinked-folder"),
        pytest.param("TV/b.mkv", "Films/b.mkv", id="moving-in-from-outside"),
    ],
)
def test_move_output_refuses_paths_out_of_the_archive(archive: Path, escape_routes: Path, old: str, new: str) -> None:
    put(archive, "Films/a.mkv", ENCODE)
    put(escape_routes, "b.mkv", b"not hb2r's")

    with pytest.raises(UnsafePath):
        move_output(archive, old, new)

    assert (archive / "Films" / "a.mkv").read_bytes() == ENCODE
    assert tree(escape_routes) == {"b.mkv": b"not hb2r's"}


def test_is_inside_archive_resolves_dot_dot_and_links(archive: Path, escape_routes: Path) -> None:
    (archive / "Films").mkdir()
    (archive / "Films" / "link-inside").symlink_to(archive / "Films")

    assert is_inside_archive(archive, archive / "Films" / "new" / "a.mkv")
    assert is_inside_archive(archive, archive / "Films" / "link-inside" / "a.mkv")
    assert not is_inside_archive(archive, archive)
    assert not is_inside_archive(archive, archive / "Films" / ".." / ".." / "a.mkv")
    assert not is_inside_archive(archive, archive / "TV" / "a.mkv")
    assert not is_inside_archive(archive, archive.parent / "archive-other" / "a.mkv")


# --- verify with real media --------------------------------------------------------------------

PRESET = "Very Fast 480p30"
_WORK_DONE_ERROR = re.compile(r'"WorkDone":\s*\{\s*"Error":\s*(\d+)')


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real 4 s video with sound, and a copy cut to half its bytes (it still claims 4 s)."""
    for tool in ("ffmpeg", "ffprobe", "HandBrakeCLI"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    folder = tmp_path_factory.mktemp("clips")
    good = make_clip(folder / "good.mkv", seconds=4)
    content = good.read_bytes()
    truncated = folder / "truncated.mkv"
    truncated.write_bytes(content[: len(content) // 2])
    return {"good": good, "truncated": truncated}


def encode_verify_publish(archive: Path, source: Path, *, job_id: int, output_rel: str) -> tuple[int, str]:
    """Run the real pipeline for one source; return HandBrakeCLI's exit code and verify()'s reason."""
    prepare_partial_dir(archive)
    temp = partial_path(archive, job_id=job_id, extension=".mp4")
    finished = subprocess.run(
        ["HandBrakeCLI", "--json", "-i", str(source), "-o", str(temp), "--preset", PRESET],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    work_done = _WORK_DONE_ERROR.findall(finished.stdout)
    verification = verify(
        exit_code=finished.returncode,
        work_done_error=int(work_done[-1]) if work_done else None,
        output_size=temp.stat().st_size if temp.exists() else 0,
        source_duration=probed_duration(source),
        output_duration=probed_duration(temp),
    )
    if verification.ok:
        publish(temp, archive / output_rel, may_replace=False)
    else:
        temp.unlink(missing_ok=True)
    return finished.returncode, verification.reason


def test_a_whole_clip_is_verified_and_published(archive: Path, clips: dict[str, Path]) -> None:
    exit_code, reason = encode_verify_publish(archive, clips["good"], job_id=1, output_rel="TV/good.mp4")

    assert exit_code == 0
    assert reason.startswith("output is 4.")
    assert abs((probed_duration(archive / "TV" / "good.mp4") or 0) - 4.0) <= 1.0
    assert os.listdir(archive / PARTIAL_DIR) == []


def test_a_truncated_clip_exits_0_but_is_rejected_and_nothing_is_published(
    archive: Path, clips: dict[str, Path]
) -> None:
    exit_code, reason = encode_verify_publish(archive, clips["truncated"], job_id=2, output_rel="TV/truncated.mp4")

    assert exit_code == 0  # HandBrakeCLI reports success: only the duration check catches this
    assert "truncated" in reason
    assert tree(archive) == {}


def test_discarding_a_temp_file_removes_it_and_refuses_anything_outside_the_partial_folder(tmp_path: Path) -> None:
    folder = prepare_partial_dir(tmp_path)
    temp = folder / "7.mkv"
    temp.write_bytes(ENCODE)
    outside = tmp_path / "TV" / "7.mkv"
    outside.parent.mkdir()
    outside.write_bytes(ENCODE)

    discard_partial(temp)
    discard_partial(temp)  # already gone: nothing to do

    assert not temp.exists()
    with pytest.raises(UnsafePath):
        discard_partial(outside)
    assert outside.read_bytes() == ENCODE
