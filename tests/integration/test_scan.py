"""The walk of real folders: what is listed, what is skipped, and that sources stay untouched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.config.models import Config, Library, Paths, Preset
from agent.domain import SourceStatus
from agent.scan import FINGERPRINT_BLOCK, fingerprint, scan_archive, scan_library

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


def library_at(source: Path, **settings: Any) -> Library:
    return Library(name="tv", source=source, output="TV", preset="tv", **settings)


def put(root: Path, rel_path: str, content: bytes = b"video") -> Path:
    path = root / rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def listed(root: Path, **settings: Any) -> list[str]:
    observed = scan_library(library_at(root, **settings))
    assert observed.status is SourceStatus.OK
    return sorted(source.rel_path for source in observed.files)


def test_files_in_nested_folders_are_listed_with_their_size_and_times(tmp_path: Path) -> None:
    put(tmp_path, "Top.mkv", b"x" * 10)
    put(tmp_path, "Show/Season 1/Disc 2/Extras/Deep/S01E99.mp4", b"y" * 7)
    put(tmp_path, "Show/Season 1/S01E01.avi")

    observed = scan_library(library_at(tmp_path))

    assert observed.status is SourceStatus.OK
    assert observed.problems == ()
    by_path = {source.rel_path: source for source in observed.files}
    assert sorted(by_path) == [
        "Show/Season 1/Disc 2/Extras/Deep/S01E99.mp4",
        "Show/Season 1/S01E01.avi",
        "Top.mkv",
    ]
    deep = by_path["Show/Season 1/Disc 2/Extras/Deep/S01E99.mp4"]
    info = os.stat(tmp_path / deep.rel_path)
    assert (deep.size, deep.mtime_ns, deep.ctime_ns) == (7, info.st_mtime_ns, info.st_ctime_ns)


def test_extensions_are_matched_case_insensitively_and_others_ignored(tmp_path: Path) -> None:
    for name in ("LOUD.MKV", "Mixed.Mp4", "quiet.mkv", "notes.txt", "film.srt", "mkv", "poster.jpg"):
        put(tmp_path, name)

    assert listed(tmp_path) == ["LOUD.MKV", "Mixed.Mp4", "quiet.mkv"]
    assert listed(tmp_path, extensions=(".MKV",)) == ["LOUD.MKV", "quiet.mkv"]


def test_hidden_files_and_folders_are_skipped(tmp_path: Path) -> None:
    put(tmp_path, "Show/S01E01.mkv")
    put(tmp_path, ".sync/Archive/old.mkv")  # Resilio's own folder
    put(tmp_path, ".hb2r-partial/17.mkv")  # hb2r's temp files
    put(tmp_path, "Show/.S01E02.mkv.Xa81Qz")  # rsync's in-flight name
    put(tmp_path, ".hidden.mkv")
    put(tmp_path, ".Trash-0/files/deleted.mkv")

    assert listed(tmp_path) == ["Show/S01E01.mkv"]


def test_files_still_arriving_under_a_temporary_name_are_skipped(tmp_path: Path) -> None:
    names = [
        "movie.mkv",
        "~movie.mkv",  # office-style lock/temp name
        "movie.mkv.!sync",  # Resilio
        "movie.mkv.!qb",  # qBittorrent
        "movie.mkv.part",
        "movie.mp4.crdownload",
        "movie.mkv.partial",
    ]
    for name in names:
        put(tmp_path, name)

    assert listed(tmp_path) == ["movie.mkv"]


def test_a_symlink_loop_ends_and_lists_each_file_once(tmp_path: Path) -> None:
    source = tmp_path / "source"
    put(source, "Show/S01/E01.mkv")
    put(source, "Film.mkv")
    (source / "Show" / "S01" / "back-to-show").symlink_to("..")
    (source / "Show" / "to-root").symlink_to(source)
    (source / "self").symlink_to(".")

    files = scan_library(library_at(source)).files

    assert sorted(source.rel_path for source in files) == ["Film.mkv", "Show/S01/E01.mkv"]


def test_a_symlink_to_a_folder_elsewhere_is_followed(tmp_path: Path) -> None:
    other_disk = tmp_path / "other-disk"
    put(other_disk, "Film.mkv")
    source = tmp_path / "source"
    put(source, "Own.mkv")
    (source / "Linked").symlink_to(other_disk)

    assert listed(source) == ["Linked/Film.mkv", "Own.mkv"]


@pytest.mark.parametrize("target", ["archive", "archive/TV", "archive/TV/Show", "state"])
def test_a_symlink_into_the_archive_or_state_dir_is_not_followed(tmp_path: Path, target: str) -> None:
    archive, state = tmp_path / "archive", tmp_path / "state"
    put(archive, "TV/Show/E01.mkv")  # hb2r's own output: encoding it would loop forever
    put(state, "leftover.mkv")
    source = tmp_path / "source"
    put(source, "Show/E01.mkv")
    (source / "link").symlink_to(tmp_path / target)

    observed = scan_library(library_at(source), excluded=[archive, state])

    assert [source.rel_path for source in observed.files] == ["Show/E01.mkv"]


needs_power_drop = pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="as root, permission checks need setpriv (util-linux) to drop CAP_DAC_OVERRIDE",
)


def scan_as_unprivileged(source: Path) -> dict[str, Any]:
    """Return the scan of source, as a process to which file permissions apply.

    CI runs as root, for which `chmod 000` blocks nothing. Under root, the scan runs in a
    child without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH: still uid 0, but bound by the mode
    bits like any user, so a folder with mode 000 cannot be listed.
    """
    script = (
        "import json, sys; from pathlib import Path;"
        "from agent.config.models import Library; from agent.scan import scan_library;"
        "library = Library(name='tv', source=Path(sys.argv[1]), output='TV', preset='tv');"
        "seen = scan_library(library);"
        "print(json.dumps({'status': seen.status, 'files': [f.rel_path for f in seen.files],"
        " 'problems': [[p.rel_path, p.message] for p in seen.problems],"
        " 'unreadable_dirs': list(seen.unreadable_dirs)}))"
    )
    command = [sys.executable, "-c", script, str(source)]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    finished = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    if finished.returncode != 0 and "setpriv" in finished.stderr:
        pytest.skip(f"cannot drop root's file-permission bypass here: {finished.stderr.strip()}")
    assert finished.returncode == 0, finished.stderr
    result: dict[str, Any] = json.loads(finished.stdout)
    return result


def scan_with_a_folder_locked(source: Path, *, locked: Path) -> dict[str, Any]:
    """Scan source as an unprivileged user while `locked` has mode 000; restore its mode after."""
    locked.chmod(0)
    try:
        return scan_as_unprivileged(source)
    finally:
        locked.chmod(0o755)


@needs_power_drop
def test_an_unreadable_subfolder_is_reported_and_the_rest_still_listed(tmp_path: Path) -> None:
    put(tmp_path, "Show/E01.mkv")
    put(tmp_path, "Locked/Inner/E02.mkv")
    put(tmp_path, "Film.mkv")
    observed = scan_with_a_folder_locked(tmp_path, locked=tmp_path / "Locked" / "Inner")

    assert observed["status"] == "ok"
    assert sorted(observed["files"]) == ["Film.mkv", "Show/E01.mkv"]
    assert observed["unreadable_dirs"] == ["Locked/Inner"]
    [(where, message)] = observed["problems"]
    assert where == "Locked/Inner"
    assert "unreadable" in message


@needs_power_drop
def test_an_unreadable_source_folder_is_reported_not_taken_for_empty(tmp_path: Path) -> None:
    source = tmp_path / "source"
    put(source, "Film.mkv")
    observed = scan_with_a_folder_locked(source, locked=source)

    assert observed["status"] == "unreadable"
    assert observed["files"] == []


def test_a_missing_source_is_missing(tmp_path: Path) -> None:
    observed = scan_library(library_at(tmp_path / "not-mounted"))

    assert observed.status is SourceStatus.MISSING
    assert observed.files == ()


def test_a_source_that_is_a_file_is_missing_not_a_folder(tmp_path: Path) -> None:
    observed = scan_library(library_at(put(tmp_path, "source.mkv")))

    assert observed.status is SourceStatus.MISSING
    assert observed.detail == "not a folder"


def test_a_file_name_that_is_not_utf8_is_reported_not_listed(tmp_path: Path) -> None:
    put(tmp_path, "good.mkv")
    descriptor = os.open(os.fsencode(tmp_path) + b"/bad\xff.mkv", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(descriptor, b"video")
    os.close(descriptor)

    observed = scan_library(library_at(tmp_path))

    assert [source.rel_path for source in observed.files] == ["good.mkv"]
    assert len(observed.problems) == 1
    problem = observed.problems[0]
    assert problem.rel_path == "bad\\xff.mkv"  # printable, and still says which file it is
    assert "not valid UTF-8" in problem.message
    problem.rel_path.encode("utf-8")  # storable and showable as it is


def test_an_empty_video_is_listed_with_size_zero(tmp_path: Path) -> None:
    put(tmp_path, "empty.mkv", b"")

    observed = scan_library(library_at(tmp_path))

    assert [(source.rel_path, source.size) for source in observed.files] == [("empty.mkv", 0)]


def test_links_that_lead_nowhere_and_fifos_are_not_listed(tmp_path: Path) -> None:
    put(tmp_path, "real.mkv")
    (tmp_path / "dangling.mkv").symlink_to(tmp_path / "gone.mkv")
    os.mkfifo(tmp_path / "pipe.mkv")  # opening it would block the scan forever

    assert listed(tmp_path) == ["real.mkv"]


def make_config(tmp_path: Path) -> Config:
    return Config(
        version=1,
        paths=Paths(archive=tmp_path / "archive", state_dir=tmp_path / "state"),
        libraries=(
            Library(name="tv", source=tmp_path / "tv", output="TV", preset="tv"),
            Library(name="movies", source=tmp_path / "movies", output="Movies", preset="tv"),
        ),
        presets={"tv": Preset(handbrake="Fast 1080p30")},
    )


def test_the_archive_scan_lists_outputs_per_library_without_temp_files(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    put(archive, "TV/Show/S01/E01.mkv")
    put(archive, "TV/Top.mkv")
    put(archive, "TV/.hidden.mkv")
    put(archive, ".hb2r-partial/3.mkv")
    put(archive, ".sync/IgnoreList", b".hb2r-partial\n")
    put(archive, "Unrelated/x.mkv")

    observed = scan_archive(make_config(tmp_path))

    assert observed.available
    assert observed.outputs == {"TV/Show/S01/E01.mkv", "TV/Top.mkv"}
    assert observed.output_folders == {"TV"}  # Movies/ does not exist yet


def test_a_missing_archive_is_unavailable(tmp_path: Path) -> None:
    observed = scan_archive(make_config(tmp_path))

    assert not observed.available
    assert str(tmp_path / "archive") in observed.detail


def pattern(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


def test_equal_content_has_equal_fingerprints(tmp_path: Path) -> None:
    content = pattern(5 * MiB)
    first, second = put(tmp_path, "a.mkv", content), put(tmp_path, "Moved/b.mkv", content)

    assert fingerprint(first, size=len(content)) == fingerprint(second, size=len(content))


@pytest.mark.parametrize(
    "offset",
    [
        pytest.param(0, id="first-byte"),
        pytest.param(5 * MiB // 2, id="middle"),
        pytest.param(5 * MiB - 1, id="last-byte"),
    ],
)
def test_a_change_in_a_large_file_changes_its_fingerprint(tmp_path: Path, offset: int) -> None:
    content = bytearray(pattern(5 * MiB))
    original = put(tmp_path, "a.mkv", bytes(content))
    content[offset] ^= 0xFF
    changed = put(tmp_path, "b.mkv", bytes(content))

    assert fingerprint(original, size=len(content)) != fingerprint(changed, size=len(content))


def test_a_change_anywhere_in_a_small_file_changes_its_fingerprint(tmp_path: Path) -> None:
    content = bytearray(pattern(3 * FINGERPRINT_BLOCK))
    original = put(tmp_path, "a.mkv", bytes(content))
    content[FINGERPRINT_BLOCK // 3] ^= 0xFF  # outside any sampled block of a large file
    changed = put(tmp_path, "b.mkv", bytes(content))

    assert fingerprint(original, size=len(content)) != fingerprint(changed, size=len(content))


def test_the_size_is_part_of_the_fingerprint(tmp_path: Path) -> None:
    # Same first, middle and last MiB (all zeros), different lengths.
    shorter = put(tmp_path, "a.mkv", bytes(8 * MiB))
    longer = put(tmp_path, "b.mkv", bytes(8 * MiB + 4096))

    short_print = fingerprint(shorter, size=8 * MiB)
    long_print = fingerprint(longer, size=8 * MiB + 4096)

    assert short_print != long_print
    assert short_print.startswith(f"{8 * MiB}:")


def test_a_vanished_file_cannot_be_fingerprinted(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"gone\.mkv"):
        fingerprint(tmp_path / "gone.mkv", size=10)


def test_fingerprinting_leaves_the_source_untouched(tmp_path: Path) -> None:
    content = pattern(5 * MiB)
    source = put(tmp_path, "a.mkv", content)
    # An access time older than the mtime would be refreshed by a read under `relatime`.
    before = os.stat(source)
    os.utime(source, ns=(before.st_mtime_ns - 10**12, before.st_mtime_ns))
    before = os.stat(source)

    fingerprint(source, size=len(content))
    fingerprint(source, size=len(content))

    after = os.stat(source)
    assert source.read_bytes() == content
    assert (after.st_mtime_ns, after.st_ctime_ns, after.st_size) == (
        before.st_mtime_ns,
        before.st_ctime_ns,
        before.st_size,
    )
    assert after.st_atime_ns == before.st_atime_ns  # O_NOATIME: backup tools see no access

