"""Loading the config file: what a valid file gives, and what each mistake in it prints.

The tests write files into a temporary folder, make it the working folder and load
`config.yaml` by that relative name, so the messages read exactly as `hb2r validate
config.yaml` prints them. Absolute paths inside messages are shown with `<tmp>` for that
folder.

BASE is a small valid config; its line numbers matter to the expected messages:

     1 version            6 - name: tv          11 source: movies     16 movies preset
     2 paths:             7   source: tv        12 output: Movies     17 (first appended line)
     3   archive          8   output: TV        13 preset: movies
     4   state_dir        9   preset: tv        14 presets:
     5 libraries:        10 - name: movies      15 tv preset
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import ConfigError, Loaded, load_config
from agent.config.show import effective_yaml

BASE = """\
version: 1
paths:
  archive: archive
  state_dir: state
libraries:
  - name: tv
    source: tv
    output: TV
    preset: tv
  - name: movies
    source: movies
    output: Movies
    preset: movies
presets:
  tv: {handbrake: Fast 1080p30}
  movies: {handbrake: HQ 1080p30 Surround, container: mp4}
"""

BCRYPT_HASH = "$2b$12$EjNJyDau5vaz3Rw4eyFU3.CgVEnpVjQQ1gikg1nhkSP/nLG5YgekG"

Change = tuple[str, str]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the archive and both sources of BASE, so BASE loads without warnings."""
    for name in ("archive", "tv", "movies"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path)
    return Path.cwd()


def edited(*changes: Change) -> str:
    """Return BASE with each (old, new) replaced once; an empty `old` appends `new`."""
    text = BASE
    for old, new in changes:
        if not old:
            text += new
            continue
        assert text.count(old) == 1, f"{old!r} must occur once in BASE"
        text = text.replace(old, new)
    return text


def load(text: str, environ: dict[str, str] | None = None) -> Loaded:
    Path("config.yaml").write_text(text, encoding="utf-8")
    return load_config(Path("config.yaml"), environ=environ or {})


def shown(items: object) -> list[str]:
    assert isinstance(items, list | tuple)
    return [str(item).replace(os.getcwd(), "<tmp>") for item in items]


def problems(text: str | bytes, environ: dict[str, str] | None = None) -> list[str]:
    """Return the problems printed for a config file with this content."""
    path = Path("config.yaml")
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ or {})
    assert str(caught.value) == "\n".join(str(problem) for problem in caught.value.problems)
    return shown(caught.value.problems)


# --- a valid file -------------------------------------------------------------------------


def test_the_base_config_loads_with_its_defaults_and_no_warnings(folder: Path) -> None:
    loaded = load(BASE)

    config = loaded.config
    assert loaded.warnings == ()
    assert [library.name for library in config.libraries] == ["tv", "movies"]
    assert config.preset_for(config.libraries[1]).extension == ".mp4"
    assert config.libraries[0].stable_after == timedelta(seconds=60)
    assert config.libraries[0].extensions[0] == ".mkv"
    assert config.limits.max_jobs == "auto"
    assert config.limits.min_free_disk == 5 * 1024**3
    assert config.scan.full_interval == timedelta(hours=6)
    assert config.users == ()


def test_relative_paths_are_resolved_against_the_config_files_folder_not_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc" / "hb2r"
    config_dir.mkdir(parents=True)
    (config_dir / "config.yaml").write_text(
        edited(
            ("archive: archive", "archive: ../../archive"),
            ("source: tv", "source: ../../media/./tv"),
            ("", "auth:\n  jwt_secret_file: secrets/jwt\n"),
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(Path("../etc/hb2r/config.yaml"), environ={}).config

    assert config.paths.archive == tmp_path / "archive"
    assert config.paths.state_dir == config_dir / "state"
    assert config.libraries[0].source == tmp_path / "media" / "tv"
    assert config.libraries[1].source == config_dir / "movies"
    assert config.auth.jwt_secret_file == config_dir / "secrets" / "jwt"


def test_a_home_folder_path_is_expanded(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(folder / "home"))

    config = load(edited(("source: tv", "source: ~/tv"))).config

    assert config.libraries[0].source == folder / "home" / "tv"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("auto", "auto", id="auto"),
        pytest.param("4", 4, id="four"),
        pytest.param("1", 1, id="one"),
        pytest.param("64", 64, id="sixty-four"),
        pytest.param("'8'", 8, id="a-quoted-number"),
    ],
)
def test_max_jobs_accepts_auto_or_1_to_64(folder: Path, value: str, expected: object) -> None:
    config = load(edited(("", f"limits:\n  max_jobs: {value}\n"))).config

    assert config.limits.max_jobs == expected


def test_a_yaml_merge_key_may_be_overridden(folder: Path) -> None:
    text = edited(
        (
            "presets:\n  tv: {handbrake: Fast 1080p30}\n",
            "presets:\n  tv: &common\n    handbrake: Fast 1080p30\n    container: mkv\n    args: [--encoder, x265]\n",
        ),
        ("movies: {handbrake: HQ 1080p30 Surround, container: mp4}", "movies:\n    <<: *common\n    container: mp4"),
    )

    presets = load(text).config.presets

    assert presets["movies"].handbrake == "Fast 1080p30"
    assert presets["movies"].args == ("--encoder", "x265")
    assert presets["movies"].container == "mp4"
    assert presets["tv"].container == "mkv"


def test_a_key_written_twice_beside_a_merge_key_is_still_a_duplicate(folder: Path) -> None:
    text = edited(
        ("tv: {handbrake: Fast 1080p30}", "tv: &common {handbrake: Fast 1080p30}"),
        (
            "movies: {handbrake: HQ 1080p30 Surround, container: mp4}",
            "movies:\n    <<: *common\n    container: mp4\n    container: mkv",
        ),
    )

    assert problems(text) == [
        "config.yaml:19: at 'presets.movies.container': duplicate key 'container' (first on line 18)"
    ]


# --- environment variables ----------------------------------------------------------------


def test_a_variable_is_replaced_by_its_value(folder: Path) -> None:
    config = load(edited(("archive: archive", "archive: ${ARCHIVE}")), {"ARCHIVE": "/srv/archive"}).config

    assert config.paths.archive == Path("/srv/archive")


def test_a_variable_holding_a_relative_path_is_resolved_against_the_config_folder(folder: Path) -> None:
    config = load(edited(("source: tv", "source: ${TV_SOURCE:-/mnt/tv}")), {"TV_SOURCE": "tv"}).config

    assert config.libraries[0].source == folder / "tv"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({}, "/mnt/tv", id="unset-takes-the-default"),
        pytest.param({"TV_SOURCE": ""}, "/mnt/tv", id="empty-takes-the-default-as-in-the-shell"),
        pytest.param({"TV_SOURCE": "/media/tv"}, "/media/tv", id="set-wins-over-the-default"),
    ],
)
def test_a_default_applies_when_the_variable_is_unset_or_empty(
    folder: Path, environ: dict[str, str], expected: str
) -> None:
    config = load(edited(("source: tv", "source: ${TV_SOURCE:-/mnt/tv}")), environ).config

    assert config.libraries[0].source == Path(expected)


@pytest.mark.parametrize(
    ("line", "environ", "expected"),
    [
        pytest.param("cpu_percent: ${CPU_LIMIT}", {"CPU_LIMIT": "70"}, 70, id="an-integer-from-a-variable"),
        pytest.param("cpu_percent: ${CPU_LIMIT:-60}", {}, 60, id="an-integer-from-a-default"),
        pytest.param("max_jobs: ${JOBS:-auto}", {}, "auto", id="auto-from-a-default"),
        pytest.param("max_jobs: ${JOBS:-auto}", {"JOBS": "3"}, 3, id="a-job-count-from-a-variable"),
    ],
)
def test_a_variable_becomes_the_type_the_key_needs(
    folder: Path, line: str, environ: dict[str, str], expected: object
) -> None:
    limits = load(edited(("", f"limits:\n  {line}\n")), environ).config.limits

    key = line.split(":")[0]
    assert getattr(limits, key) == expected


def test_a_variable_inside_a_duration(folder: Path) -> None:
    text = edited(("", "auth:\n  session_timeout: ${SESSION_TIMEOUT_MINUTES:-60}m\n"))

    assert load(text).config.auth.session_timeout == timedelta(hours=1)
    assert load(text, {"SESSION_TIMEOUT_MINUTES": "90"}).config.auth.session_timeout == timedelta(minutes=90)


def test_a_quoted_variable_in_a_flow_mapping_works(folder: Path) -> None:
    config = load(edited(("", 'limits: {cpu_percent: "${CPU_LIMIT:-70}"}\n'))).config

    assert config.limits.cpu_percent == 70


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("/opt/$${HOME}/HandBrakeCLI", id="plain"),
        pytest.param('"/opt/$${HOME}/HandBrakeCLI"', id="quoted"),
    ],
)
def test_a_doubled_dollar_keeps_a_literal_variable(folder: Path, value: str) -> None:
    config = load(edited(("", f"handbrake:\n  binary: {value}\n")), {"HOME": "/root"}).config

    assert config.handbrake.binary == "/opt/${HOME}/HandBrakeCLI"


def test_the_process_environment_is_used_by_default(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HB2R_TEST_CPU", "42")
    Path("config.yaml").write_text(edited(("", "limits:\n  cpu_percent: ${HB2R_TEST_CPU}\n")))

    assert load_config(Path("config.yaml")).config.limits.cpu_percent == 42


def test_an_unset_variable_without_default_names_the_variable_and_the_line(folder: Path) -> None:
    assert problems(edited(("archive: archive", "archive: ${ARCHIVE_DESTINATION}"))) == [
        "config.yaml:3: at 'paths.archive': environment variable ARCHIVE_DESTINATION is not set "
        "and has no default (write ${ARCHIVE_DESTINATION:-value})"
    ]


def test_every_unset_variable_is_reported(folder: Path) -> None:
    assert problems(edited(("", "handbrake:\n  binary: ${HB_DIR}/${HB_NAME}\n"))) == [
        "config.yaml:18: at 'handbrake.binary': environment variable HB_DIR is not set "
        "and has no default (write ${HB_DIR:-value})",
        "config.yaml:18: at 'handbrake.binary': environment variable HB_NAME is not set "
        "and has no default (write ${HB_NAME:-value})",
    ]


def test_a_variable_set_to_nothing_leaves_a_required_path_without_a_value(folder: Path) -> None:
    text = edited(("archive: archive", "archive: ${ARCHIVE_DESTINATION}"))

    assert problems(text, {"ARCHIVE_DESTINATION": ""}) == [
        "config.yaml:3: at 'paths.archive': has no value (the key is left empty, or its ${VAR} is empty)"
    ]


def test_an_unquoted_variable_in_a_flow_mapping_explains_the_quotes(folder: Path) -> None:
    assert problems(edited(("", "limits: {cpu_percent: ${CPU_LIMIT:-80}}\n"))) == [
        "config.yaml:17: not valid YAML: while parsing a flow mapping, expected ',' or '}', but got '{'; "
        'inside { } or [ ], a value with ${VAR} must be quoted, like "${VAR:-80}"'
    ]


# --- mistakes in a file ---------------------------------------------------------------------

LIMITS = "limits:\n  "


def _append(text: str) -> Change:
    return ("", text)


def _library_key(line: str) -> Change:
    """Add a key to the first library (line 10)."""
    return ("    preset: tv\n", f"    preset: tv\n    {line}\n")


def _tv_args(args: str) -> Change:
    return ("tv: {handbrake: Fast 1080p30}", f"tv: {{handbrake: Fast 1080p30, args: {args}}}")


LOOP = "the agent would encode its own output forever"
SHARED_DB = "Resilio Sync would share the database"
BAD_PATH = "output must be a folder name under the archive, like 'TV' (not absolute, no '..', not hidden)"
MAX_JOBS = "max_jobs must be 'auto' or a whole number from 1 to 64"
BAD_ARGS = "args may not contain"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            [_append(LIMITS + "max_job: 2\n")],
            ["config.yaml:18: at 'limits.max_job': unknown key 'max_job'; did you mean 'max_jobs'?"],
            id="a-typo-in-max-jobs-suggests-the-right-key",
        ),
        pytest.param(
            [_append("librarys: []\n")],
            ["config.yaml:17: at 'librarys': unknown key 'librarys'; did you mean 'libraries'?"],
            id="a-typo-in-a-top-level-key-suggests-the-right-key",
        ),
        pytest.param(
            [_append("colour: blue\n")],
            [
                "config.yaml:17: at 'colour': unknown key 'colour' (known: audio, auth, handbrake, hdr, host, "
                "larger_output, libraries, limits, notify, order, order_across, paths, presets, retry, rules, scan, "
                "server, store, subtitles, users, verify, version)"
            ],
            id="an-unknown-key-with-no-near-match-lists-the-known-keys",
        ),
        pytest.param(
            [("output: TV", "ouptut: TV")],
            [
                "config.yaml:6: at 'libraries[0].output': required key is missing",
                "config.yaml:8: at 'libraries[0].ouptut': unknown key 'ouptut'; did you mean 'output'?",
            ],
            id="a-misspelled-library-key-is-unknown-and-the-real-one-missing",
        ),
        pytest.param(
            [("  state_dir: state\n", "  state_dir: state\n  archive: /elsewhere\n")],
            ["config.yaml:5: at 'paths.archive': duplicate key 'archive' (first on line 3)"],
            id="a-duplicate-key-names-the-first-line",
        ),
        pytest.param(
            [("    preset: tv\n", "    preset: tvv\n")],
            ["config.yaml:9: at 'libraries[0].preset': preset 'tvv' is not defined (known: movies, tv)"],
            id="an-undefined-preset-lists-the-known-ones",
        ),
        pytest.param(
            [("name: movies", "name: tv")],
            ["config.yaml:10: at 'libraries[1].name': library name 'tv' is already used by libraries[0]"],
            id="two-libraries-with-one-name",
        ),
        pytest.param(
            [("name: tv", "name: TV Shows")],
            ["config.yaml:6: at 'libraries[0].name': 'TV Shows' is not a valid short unique name (a-z, 0-9, _ and -)"],
            id="a-library-name-with-capitals-and-spaces",
        ),
        pytest.param(
            [("output: Movies", "output: TV")],
            ["config.yaml:12: at 'libraries[1].output': output folder 'TV' is already used by libraries[0]"],
            id="two-libraries-with-one-output-folder",
        ),
        pytest.param(
            [("output: Movies", "output: tv")],
            ["config.yaml:12: at 'libraries[1].output': output folder 'tv' is already used by libraries[0]"],
            id="output-folders-differing-only-in-case-are-one-folder",
        ),
        pytest.param(
            [("output: Movies", "output: TV/Movies")],
            [
                "config.yaml:12: at 'libraries[1].output': output folder 'TV/Movies' overlaps "
                "libraries[0].output 'TV': their transcodes would mix"
            ],
            id="an-output-folder-inside-another-libraries-output-folder",
        ),
        pytest.param(
            [("output: TV", "output: ../x")],
            [f"config.yaml:8: at 'libraries[0].output': {BAD_PATH}, got '../x'"],
            id="an-output-folder-outside-the-archive",
        ),
        pytest.param(
            [("output: TV", "output: /srv/TV")],
            [f"config.yaml:8: at 'libraries[0].output': {BAD_PATH}, got '/srv/TV'"],
            id="an-absolute-output-folder",
        ),
        pytest.param(
            [("archive: archive", "archive: tv/archive")],
            [f"config.yaml:7: at 'libraries[0].source': the archive '<tmp>/tv/archive' is inside this source: {LOOP}"],
            id="the-archive-inside-a-source",
        ),
        pytest.param(
            [("source: tv", "source: archive/tv")],
            [f"config.yaml:7: at 'libraries[0].source': source is inside the archive '<tmp>/archive': {LOOP}"],
            id="a-source-inside-the-archive",
        ),
        pytest.param(
            [("source: tv", "source: archive")],
            [f"config.yaml:7: at 'libraries[0].source': source is the archive itself: {LOOP}"],
            id="a-source-that-is-the-archive",
        ),
        pytest.param(
            [("source: movies", "source: tv/movies")],
            [
                "config.yaml:11: at 'libraries[1].source': source overlaps libraries[0].source: "
                "files would be encoded twice"
            ],
            id="a-source-inside-another-source",
        ),
        pytest.param(
            [("source: movies", "source: ./tv/")],
            [
                "config.yaml:11: at 'libraries[1].source': source overlaps libraries[0].source: "
                "files would be encoded twice"
            ],
            id="one-source-written-two-ways",
        ),
        pytest.param(
            [("state_dir: state", "state_dir: archive/.hb2r")],
            [f"config.yaml:4: at 'paths.state_dir': state_dir is inside the archive: {SHARED_DB}"],
            id="the-state-folder-inside-the-archive",
        ),
        pytest.param(
            [("state_dir: state", "state_dir: archive")],
            [f"config.yaml:4: at 'paths.state_dir': state_dir is the archive itself: {SHARED_DB}"],
            id="the-state-folder-is-the-archive",
        ),
        pytest.param(
            [("state_dir: state", "state_dir: movies/.hb2r")],
            [
                "config.yaml:4: at 'paths.state_dir': state_dir is inside the source of library 'movies': "
                "hb2r never writes to watched folders"
            ],
            id="the-state-folder-inside-a-source",
        ),
        pytest.param(
            [_append("auth:\n  jwt_secret_file: archive/jwt.secret\n")],
            [
                "config.yaml:18: at 'auth.jwt_secret_file': jwt_secret_file is inside the archive: "
                "Resilio Sync would share the secret"
            ],
            id="the-login-secret-inside-the-archive",
        ),
        pytest.param(
            [_append(LIMITS + "cpu_percent: 0\n")],
            ["config.yaml:18: at 'limits.cpu_percent': input should be greater than or equal to 1, got 0"],
            id="a-cpu-limit-of-0-percent",
        ),
        pytest.param(
            [_append(LIMITS + "memory_percent: 101\n")],
            ["config.yaml:18: at 'limits.memory_percent': input should be less than or equal to 100, got 101"],
            id="a-memory-limit-of-101-percent",
        ),
        pytest.param(
            [_append(LIMITS + "max_jobs: 0\n")],
            [f"config.yaml:18: at 'limits.max_jobs': {MAX_JOBS}, got 0"],
            id="zero-jobs",
        ),
        pytest.param(
            [_append(LIMITS + "max_jobs: 65\n")],
            [f"config.yaml:18: at 'limits.max_jobs': {MAX_JOBS}, got 65"],
            id="65-jobs",
        ),
        pytest.param(
            [_append(LIMITS + "max_jobs: many\n")],
            [f"config.yaml:18: at 'limits.max_jobs': {MAX_JOBS}, got 'many'"],
            id="many-jobs",
        ),
        pytest.param(
            [_append(LIMITS + "windows: ['22:00-06:00', '25:00-01:00']\n")],
            [
                "config.yaml:18: at 'limits.windows[1]': '25:00' is not a 24-hour HH:MM time (00:00 to 23:59) "
                "in window '25:00-01:00'"
            ],
            id="a-window-starting-at-25-o-clock",
        ),
        pytest.param(
            [_library_key("stable_after: soon")],
            ["config.yaml:10: at 'libraries[0].stable_after': expected a duration like 90s, 15m or 1h, got 'soon'"],
            id="a-duration-that-is-a-word",
        ),
        pytest.param(
            [_append("scan:\n  interval: .inf\n")],
            ["config.yaml:18: at 'scan.interval': a duration must be finite and under 999999999 days, got inf"],
            id="an-infinite-duration",
        ),
        pytest.param(
            [_append("scan:\n  interval: 10m\n  full_interval: 5m\n")],
            [
                "config.yaml:17: at 'scan': full_interval (5m) must be at least interval (10m): "
                "a full pass cannot come more often than passes do"
            ],
            id="a-full-pass-more-often-than-passes",
        ),
        pytest.param(
            [_append(LIMITS + "min_free_disk: 5 gigs\n")],
            ["config.yaml:18: at 'limits.min_free_disk': expected a size like 512MiB or 5GiB, got '5 gigs'"],
            id="a-size-in-made-up-units",
        ),
        pytest.param(
            [_tv_args("[-o, /tmp/out.mkv]")],
            [f"config.yaml:15: at 'presets.tv.args': {BAD_ARGS} '-o': the output is chosen by hb2r"],
            id="preset-args-choosing-the-output",
        ),
        pytest.param(
            [_tv_args("[--json]")],
            [f"config.yaml:15: at 'presets.tv.args': {BAD_ARGS} '--json': hb2r always passes --json"],
            id="preset-args-with-json",
        ),
        pytest.param(
            [_tv_args("[--output=x]")],
            [f"config.yaml:15: at 'presets.tv.args': {BAD_ARGS} '--output': the output is chosen by hb2r"],
            id="preset-args-choosing-the-output-with-an-equals-sign",
        ),
        pytest.param(
            [_tv_args("[--preset, Other]")],
            [f"config.yaml:15: at 'presets.tv.args': {BAD_ARGS} '--preset': use the preset's 'handbrake' key"],
            id="preset-args-naming-another-preset",
        ),
        pytest.param(
            [
                _append(
                    f"users:\n  - name: admin\n    role: admin\n    password_hash: '{BCRYPT_HASH}'\n"
                    "  - name: guest\n    role: user\n    password_hash: hunter2\n"
                )
            ],
            [
                "config.yaml:23: at 'users[1].password_hash': password_hash is not a bcrypt hash; "
                "make one with 'hb2r hash-password'"
            ],
            id="a-plain-text-password-instead-of-a-hash",
        ),
        pytest.param(
            [
                _append(
                    f"users:\n  - {{name: admin, role: admin, password_hash: '{BCRYPT_HASH}'}}\n"
                    f"  - {{name: admin, role: user, password_hash: '{BCRYPT_HASH}'}}\n"
                )
            ],
            ["config.yaml:19: at 'users[1].name': user 'admin' is already defined by users[0]"],
            id="two-users-with-one-name",
        ),
        pytest.param(
            [_append(f"users:\n  - {{name: admin, role: root, password_hash: '{BCRYPT_HASH}'}}\n")],
            ["config.yaml:18: at 'users[0].role': input should be 'admin' or 'user', got 'root'"],
            id="an-unknown-role",
        ),
        pytest.param(
            [_library_key("extensions: [.mp4, mkv]")],
            [
                "config.yaml:10: at 'libraries[0].extensions': extension 'mkv' must look like '.mkv' "
                "(a dot, then letters or digits)"
            ],
            id="an-extension-without-its-dot",
        ),
        pytest.param(
            [("version: 1", "version: 2")],
            ["config.yaml:1: at 'version': this hb2r reads config version 1, got 2"],
            id="a-future-version",
        ),
        pytest.param(
            [("version: 1\n", "")],
            ["config.yaml:1: at 'version': required key is missing"],
            id="no-version",
        ),
        pytest.param(
            [("  archive: archive\n", "  archive:\n")],
            ["config.yaml:3: at 'paths.archive': has no value (the key is left empty, or its ${VAR} is empty)"],
            id="the-archive-left-empty",
        ),
        pytest.param(
            [("  archive: archive\n", "")],
            ["config.yaml:2: at 'paths.archive': required key is missing"],
            id="no-archive",
        ),
        pytest.param(
            [_append("retry:\n  backoff: 2h\n")],
            ["config.yaml:17: at 'retry.max_backoff': max_backoff is shorter than backoff"],
            id="a-first-retry-wait-longer-than-the-longest",
        ),
        pytest.param(
            [_append("server:\n  listen: localhost\n")],
            [
                "config.yaml:18: at 'server.listen': listen must be host:port like 127.0.0.1:8080 or [::1]:8080, "
                "got 'localhost'"
            ],
            id="a-listen-address-without-a-port",
        ),
        pytest.param(
            [("tv: {handbrake: Fast 1080p30}", "tv: {handbrake: Fast 1080p30, import_file: Fast.json}")],
            ["config.yaml:15: at 'presets.tv.import_file': cannot read preset file '<tmp>/Fast.json'"],
            id="a-preset-file-that-is-not-there",
        ),
        pytest.param(
            [_append("handbrake:\n  binary: !!int abc\n")],
            ["config.yaml:18: at 'handbrake.binary': bad value: 'abc' is not a valid int"],
            id="a-value-with-a-wrong-yaml-tag",
        ),
        pytest.param(
            [_append("handbrake:\n  binary: !!python/name:os.system ''\n")],
            [
                "config.yaml:18: at 'handbrake.binary': bad value: could not determine a constructor for the tag "
                "'tag:yaml.org,2002:python/name:os.system'"
            ],
            id="a-python-tag-is-refused",
        ),
    ],
)
def test_a_mistake_is_explained_with_its_line_and_key(folder: Path, changes: list[Change], expected: list[str]) -> None:
    assert problems(edited(*changes)) == expected


def test_a_library_list_with_every_entry_commented_out_says_it_is_empty(folder: Path) -> None:
    text = "version: 1\npaths:\n  archive: archive\nlibraries:\n#  - name: tv\n#    source: tv\n"

    assert problems(text) == [
        "config.yaml:4: at 'libraries': has no value (the key is left empty, or its ${VAR} is empty)"
    ]


def test_a_source_linked_into_the_archive_is_caught(folder: Path) -> None:
    (folder / "archive" / "TV").mkdir()
    (folder / "link").symlink_to(folder / "archive" / "TV")

    assert problems(edited(("source: tv", "source: link"))) == [
        f"config.yaml:7: at 'libraries[0].source': source is inside the archive '<tmp>/archive': {LOOP}"
    ]


# --- shape and cross-check errors in one run ------------------------------------------------

UNDEFINED_TVV = "config.yaml:9: at 'libraries[0].preset': preset 'tvv' is not defined (known: movies, tv)"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            [_append(LIMITS + "max_job: 2\n"), ("    preset: tv\n", "    preset: tvv\n")],
            ["config.yaml:18: at 'limits.max_job': unknown key 'max_job'; did you mean 'max_jobs'?", UNDEFINED_TVV],
            id="a-misspelt-key-and-an-undefined-preset",
        ),
        pytest.param(
            [("    preset: tv\n", "    preset: tvv\n    stable_aftr: 5s\n")],
            [
                "config.yaml:10: at 'libraries[0].stable_aftr': unknown key 'stable_aftr'; "
                "did you mean 'stable_after'?",
                UNDEFINED_TVV,
            ],
            id="a-misspelt-key-in-the-library-naming-an-undefined-preset",
        ),
        pytest.param(
            [
                ("    preset: movies\n", "    preset: movies\n    stable_after: later\n"),
                ("    preset: tv\n", "    preset: tvv\n"),
            ],
            [
                "config.yaml:14: at 'libraries[1].stable_after': expected a duration like 90s, 15m or 1h, got 'later'",
                UNDEFINED_TVV,
            ],
            id="a-wrong-value-in-one-library-and-an-undefined-preset-in-another",
        ),
        pytest.param(
            [("container: mp4", "container: avi"), ("name: movies", "name: tv")],
            [
                "config.yaml:16: at 'presets.movies.container': input should be 'mkv', 'mp4' or 'webm', got 'avi'",
                "config.yaml:10: at 'libraries[1].name': library name 'tv' is already used by libraries[0]",
            ],
            id="a-wrong-preset-is-still-defined-for-the-libraries-that-use-it",
        ),
        pytest.param(
            [("archive: archive", "archive: ${ARCHIVE}"), ("    preset: tv\n", "    preset: tvv\n")],
            [
                "config.yaml:3: at 'paths.archive': environment variable ARCHIVE is not set and has no default "
                "(write ${ARCHIVE:-value})",
                UNDEFINED_TVV,
            ],
            id="an-archive-left-unset-is-not-compared-with-the-sources",
        ),
        pytest.param(
            [("state_dir: state", "state_dir: archive/state\n  archive_group: ''"), ("source: movies", "source: tv")],
            [
                "config.yaml:5: at 'paths.archive_group': string should have at least 1 character, got ''",
                "config.yaml:4: at 'paths.state_dir': state_dir is inside the archive: Resilio Sync would share the "
                "database",
                "config.yaml:12: at 'libraries[1].source': source overlaps libraries[0].source: files would be "
                "encoded twice",
            ],
            id="a-wrong-value-leaves-the-rest-of-its-section-checked",
        ),
        pytest.param(
            [("    preset: tv\n", "    preset: tvv\n    stable_after: later\n")],
            [
                "config.yaml:10: at 'libraries[0].stable_after': expected a duration like 90s, 15m or 1h, got 'later'",
                UNDEFINED_TVV,
            ],
            id="a-wrong-value-in-the-library-naming-an-undefined-preset",
        ),
        pytest.param(
            [_append("retry:\n  backof: 1s\n  max_backoff: 10s\n")],
            ["config.yaml:18: at 'retry.backof': unknown key 'backof'; did you mean 'backoff'?"],
            id="a-misspelt-key-is-not-read-as-its-default-by-the-checks",
        ),
        pytest.param(
            [_append("retry:\n  backoff: soon\n  max_backoff: 10s\n")],
            ["config.yaml:18: at 'retry.backoff': expected a duration like 90s, 15m or 1h, got 'soon'"],
            id="a-wrong-value-is-not-read-as-its-default-by-the-checks",
        ),
    ],
)
def test_shape_and_cross_check_errors_are_reported_in_one_run(
    folder: Path, changes: list[Change], expected: list[str]
) -> None:
    assert problems(edited(*changes)) == expected


# --- warnings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            [_append(LIMITS + "cpu_percent: 95\n")],
            ["config.yaml:18: at 'limits.cpu_percent': 95% is above 90%: the host may be left with little headroom"],
            id="a-cpu-limit-of-95-percent",
        ),
        pytest.param(
            [_append("scan:\n  max_vanish_percent: 100\n")],
            [
                "config.yaml:18: at 'scan.max_vanish_percent': 100% is above 90%: "
                "an unmounted disk may not pause its library"
            ],
            id="a-vanish-limit-so-high-it-never-pauses",
        ),
        pytest.param(
            [("source: movies", "source: /mnt/not-mounted")],
            [
                "config.yaml:11: at 'libraries[1].source': source folder '/mnt/not-mounted' does not exist; "
                "library 'movies' stays paused until it does (not mounted?)"
            ],
            id="a-source-folder-that-does-not-exist",
        ),
        pytest.param(
            [("archive: archive", "archive: not-yet")],
            [
                "config.yaml:3: at 'paths.archive': archive folder '<tmp>/not-yet' does not exist yet; "
                "nothing is published until it does"
            ],
            id="an-archive-folder-that-does-not-exist",
        ),
        pytest.param(
            [_append("  spare: {handbrake: Very Fast 480p30}\n")],
            ["config.yaml:17: at 'presets.spare': preset 'spare' is not used by any library"],
            id="a-preset-no-library-uses",
        ),
    ],
)
def test_a_doubtful_setting_is_a_warning_not_an_error(folder: Path, changes: list[Change], expected: list[str]) -> None:
    loaded = load(edited(*changes))

    assert shown(loaded.warnings) == expected


def test_no_libraries_is_a_warning(folder: Path) -> None:
    text = "version: 1\npaths:\n  archive: archive\n"

    assert shown(load(text).warnings) == [
        "config.yaml:1: at 'libraries': no libraries are configured: there is nothing to do"
    ]


# --- files that are not a config at all -----------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("", "config.yaml: the file is empty (see examples/config.yaml)", id="an-empty-file"),
        pytest.param(
            "# version: 1\n\n   # paths:\n",
            "config.yaml: the file is empty (see examples/config.yaml)",
            id="a-file-of-comments",
        ),
        pytest.param(
            "a: [1,",
            "config.yaml:1: not valid YAML: while parsing a flow node, "
            "expected the node content, but found '<stream end>'",
            id="a-list-that-never-closes",
        ),
        pytest.param(
            "version: 1\npaths:\n  archive: 'archive\n",
            "config.yaml:4: not valid YAML: while scanning a quoted scalar (from line 3), "
            "found unexpected end of stream",
            id="a-quote-that-never-closes",
        ),
        pytest.param(
            "version: 1\npaths:\n\tarchive: archive\n",
            "config.yaml:3: not valid YAML: while scanning for the next token, found character '\\t' "
            "that cannot start any token",
            id="a-tab-for-indentation",
        ),
        pytest.param(
            "version: 1\n---\nversion: 1\n",
            "config.yaml:2: not valid YAML: expected a single document in the stream (from line 1), "
            "but found another document",
            id="two-documents",
        ),
        pytest.param(
            "- version: 1\n- paths: {}\n",
            "config.yaml:1: the top level must be a mapping of keys (version, paths, libraries, ...), got a list",
            id="a-list-at-the-top",
        ),
        pytest.param(
            "just some text\n",
            "config.yaml:1: the top level must be a mapping of keys (version, paths, libraries, ...), "
            "got a single value",
            id="plain-text",
        ),
        pytest.param(
            b"version: 1\n# caf\xe9 in Latin-1\n",
            "config.yaml:2: not UTF-8 text (byte 16); save the file as UTF-8",
            id="latin-1-bytes",
        ),
        pytest.param(
            b"version: 1\n" + b"# padding\n" * 110_000,
            "config.yaml: larger than 1 MiB; is this the config file?",
            id="a-file-over-1-mib",
        ),
    ],
)
def test_a_file_that_is_no_config_gives_one_problem(folder: Path, content: str | bytes, expected: str) -> None:
    assert problems(content) == [expected]


def test_a_missing_file(folder: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(Path("nowhere.yaml"), environ={})

    assert str(caught.value) == "nowhere.yaml: no such file (see examples/config.yaml)"


def test_a_folder_instead_of_a_file(folder: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(Path("archive"), environ={})

    assert str(caught.value) == "archive: is a folder, not a config file"


def test_a_yaml_bomb_is_refused_before_it_is_expanded(folder: Path) -> None:
    # "Billion laughs": 9 levels of 9 aliases each would build 9**9 (387 million) strings.
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        lines.append(f"lol{level}: &lol{level} [" + ", ".join([f"*lol{level - 1}"] * 9) + "]")
    bomb = "version: 1\n" + "\n".join(lines) + "\n"

    found = problems(bomb)

    assert len(found) == 1
    assert "refusing a YAML bomb" in found[0]
    assert found[0].startswith("config.yaml:")


def test_fifty_mistakes_are_all_reported_at_once_each_with_its_own_line(folder: Path) -> None:
    text = "version: 1\npaths:\n  archive: archive\npresets:\n  tv: {handbrake: Fast 1080p30}\nlibraries:\n"
    for index in range(50):
        text += f"  - name: show{index}\n    source: tv/{index}\n    output: Show{index}\n    preset: tv\n"
        text += "    stable_after: later\n"

    found = problems(text)

    assert len(found) == 50
    expected_lines = [7 + 5 * index + 4 for index in range(50)]
    assert [int(problem.split(":")[1]) for problem in found] == expected_lines
    assert found[49] == (
        "config.yaml:256: at 'libraries[49].stable_after': expected a duration like 90s, 15m or 1h, got 'later'"
    )


# --- server.trusted_proxies ---------------------------------------------------------------------


def test_trusted_proxies_are_addresses_or_networks(folder: Path) -> None:
    loaded = load(edited(_append("server:\n  trusted_proxies: [127.0.0.1, 10.0.0.0/8, '::1', 'fd00::/8']\n")))

    assert [str(network) for network in loaded.config.server.trusted_proxies] == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
        "fd00::/8",
    ]
    assert load(BASE).config.server.trusted_proxies == ()


def test_each_bad_trusted_proxy_is_named_with_its_line(folder: Path) -> None:
    text = edited(_append("server:\n  trusted_proxies:\n    - 10.0.0.1/8\n    - proxy.lan\n    - 192.168.1.1\n"))

    assert problems(text) == [
        "config.yaml:19: at 'server.trusted_proxies[0]': '10.0.0.1/8' has bits set beyond its /8 prefix; "
        "write 10.0.0.0/8",
        "config.yaml:20: at 'server.trusted_proxies[1]': a trusted proxy is an IP address or network like "
        "10.0.0.0/8 or ::1, got 'proxy.lan'",
    ]


# --- where the state lives: store and host ---------------------------------------------------

STORE_PASSWORD = "pa55-w0rd-in-url"


def test_with_no_store_key_the_state_stays_in_sqlite_and_the_host_is_named_after_the_machine(folder: Path) -> None:
    config = load(BASE).config

    assert config.store.url == "sqlite"
    assert not config.store.is_postgres
    assert config.host.name == socket.gethostname().split(".")[0]


def test_the_store_url_comes_from_the_environment_and_its_password_is_never_shown(folder: Path) -> None:
    url = f"postgresql://hb2r:{STORE_PASSWORD}@db.lan:5433/media"
    text = edited(("", "store:\n  url: ${HB2R_STORE_URL:-sqlite}\nhost:\n  name: nas-1\n"))

    config = load(text, environ={"HB2R_STORE_URL": url}).config

    assert config.store.url == url and config.store.is_postgres
    assert config.host.name == "nas-1"
    shown_yaml = effective_yaml(config)
    assert STORE_PASSWORD not in shown_yaml and STORE_PASSWORD not in repr(config)
    assert "postgresql://hb2r:<redacted>@db.lan:5433/media" in shown_yaml


def test_a_password_file_outside_the_archive_is_accepted(folder: Path) -> None:
    text = edited(("", "store:\n  url: postgresql://hb2r@db.lan/hb2r\n  password_file: secrets/db\n"))

    config = load(text).config

    assert config.store.password_file == folder / "secrets" / "db"


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        pytest.param(
            "url: mysql://hb2r@db.lan/hb2r",
            "config.yaml:18: at 'store.url': store.url must be 'sqlite' or a postgresql://user@host/database URL, "
            "got 'mysql://hb2r@db.lan/hb2r'",
            id="a-database-hb2r-cannot-use",
        ),
        pytest.param(
            "url: sqlite3",
            "config.yaml:18: at 'store.url': store.url must be 'sqlite' or a postgresql://user@host/database URL, "
            "got 'sqlite3'",
            id="a-misspelt-sqlite",
        ),
        pytest.param(
            f"url: postgresql://hb2r:{STORE_PASSWORD}@/hb2r",
            "config.yaml:18: at 'store.url': store.url 'postgresql://hb2r:<redacted>@/hb2r' names no host: "
            "write postgresql://user@host[:port]/database",
            id="no-host-and-the-password-hidden",
        ),
        pytest.param(
            f"url: postgresql://hb2r:{STORE_PASSWORD}@db.lan:5432",
            "config.yaml:18: at 'store.url': store.url 'postgresql://hb2r:<redacted>@db.lan:5432' names no "
            "database: write postgresql://user@host[:port]/database",
            id="no-database",
        ),
        pytest.param(
            f"url: postgresql://hb2r:{STORE_PASSWORD}@db.lan:99999/hb2r",
            "config.yaml:18: at 'store.url': store.url 'postgresql://hb2r:<redacted>@db.lan:99999/hb2r' is not "
            "a valid URL: Port out of range 0-65535",
            id="a-port-out-of-range",
        ),
        pytest.param(
            f"url: postgresql://hb2r:{STORE_PASSWORD}@db.lan/hb2r\n  password_file: db.password",
            "config.yaml:19: at 'store.password_file': the password is both in store.url "
            "(postgresql://hb2r:<redacted>@db.lan/hb2r) and in password_file: keep one",
            id="the-password-in-two-places",
        ),
        pytest.param(
            "password_file: db.password",
            "config.yaml:18: at 'store.password_file': password_file is for a PostgreSQL store; "
            "store.url is 'sqlite'",
            id="a-password-file-for-sqlite",
        ),
        pytest.param(
            "url: postgresql://hb2r@db.lan/hb2r\n  password_file: archive/db.password",
            "config.yaml:19: at 'store.password_file': password_file is inside the archive: "
            "Resilio Sync would share the password",
            id="the-password-file-inside-the-archive",
        ),
    ],
)
def test_a_bad_store_is_refused_with_a_message_that_never_shows_the_password(
    folder: Path, store: str, expected: str
) -> None:
    found = problems(edited(("", f"store:\n  {store}\n")))

    assert found == [expected]
    assert STORE_PASSWORD not in "\n".join(found)


def test_a_host_name_with_a_space_is_refused(folder: Path) -> None:
    found = problems(edited(("", "host:\n  name: my nas\n")))

    assert found == [
        "config.yaml:18: at 'host.name': 'my nas' is not a valid host name (letters, digits, _ . and -; up to 64): "
        "names this host among those sharing a store; default: the machine's hostname"
    ]


def test_an_empty_host_name_from_the_environment_means_the_machines_name(folder: Path) -> None:
    config = load(edited(("", "host:\n  name: ${HB2R_HOST_NAME:-}\n"))).config

    assert config.host.name == socket.gethostname().split(".")[0]


LEASE_AT = "config.yaml:19: at 'store.lease'"


@pytest.mark.parametrize(
    ("lease", "expected"),
    [
        pytest.param("2s", f"{LEASE_AT}: lease must be between 3s and 10m, got 2s", id="too-short"),
        pytest.param("1h", f"{LEASE_AT}: lease must be between 3s and 10m, got 1h", id="too-long"),
    ],
)
def test_a_lease_a_host_could_not_renew_or_that_would_strand_a_job_is_refused(
    folder: Path, lease: str, expected: str
) -> None:
    assert problems(edited(("", f"store:\n  url: sqlite\n  lease: {lease}\n"))) == [expected]


def test_the_lease_defaults_to_30_seconds_and_three_host_losses(folder: Path) -> None:
    store = load(BASE).config.store

    assert (store.lease, store.host_losses) == (timedelta(seconds=30), 3)


# --- verify: per library, with top-level defaults ------------------------------------------


def test_the_decode_check_is_off_unless_asked_for(folder: Path) -> None:
    config = load(BASE).config

    assert [config.verify_for(library).decode for library in config.libraries] == [False, False]


def test_a_top_level_decode_check_applies_to_every_library_that_does_not_say_otherwise(folder: Path) -> None:
    text = edited(
        ("    preset: movies\n", "    preset: movies\n    verify: {decode: false}\n"), ("", "verify: {decode: true}\n")
    )
    config = load(text).config

    assert [(library.name, config.verify_for(library).decode) for library in config.libraries] == [
        ("tv", True),
        ("movies", False),
    ]
    shown_yaml = effective_yaml(config)  # validate --show prints what each library really gets
    assert "verify:\n    decode: true\n" in shown_yaml
    assert "verify:\n    decode: false\n" in shown_yaml


def test_a_decode_check_that_is_not_a_yes_or_no_is_named_with_its_line(folder: Path) -> None:
    text = edited(("    preset: tv\n", "    preset: tv\n    verify: {decode: sometimes}\n"))

    assert problems(text) == [
        "config.yaml:10: at 'libraries[0].verify.decode': input should be a valid boolean, "
        "unable to interpret input, got 'sometimes'"
    ]


# --- order: per library, with a top-level default ------------------------------------------


def test_the_queue_starts_the_oldest_job_first_and_libraries_in_their_listed_order_by_default(folder: Path) -> None:
    config = load(BASE).config

    assert [config.order_for(library) for library in config.libraries] == ["oldest", "oldest"]
    assert config.order_across == "listed"


def test_a_library_without_an_order_of_its_own_takes_the_top_level_one(folder: Path) -> None:
    text = edited(
        ("    preset: movies\n", "    preset: movies\n    order: largest\n"),
        ("", "order: smallest\norder_across: mixed\n"),
    )
    config = load(text).config

    orders = [(library.name, library.order) for library in config.libraries]
    assert orders == [("tv", "smallest"), ("movies", "largest")]
    assert config.order_across == "mixed"


def test_an_order_hb2r_does_not_know_lists_the_ones_it_does(folder: Path) -> None:
    text = edited(("    preset: tv\n", "    preset: tv\n    order: random\n"))

    assert problems(text) == [
        "config.yaml:10: at 'libraries[0].order': input should be 'oldest', 'newest', 'smallest', 'largest' or "
        "'saving', got 'random'"
    ]


# --- media-aware rules: checked and shown, per library with top-level defaults --------------


def test_the_rules_default_to_encoding_everything_and_copying_hdr(folder: Path) -> None:
    config = load(BASE).config
    tv = config.libraries[0]

    assert (tv.rules, tv.hdr, tv.larger_output.min_saving, tv.larger_output.then) == ((), "copy", 10, "copy")
    assert (tv.audio.languages, tv.audio.fallback, tv.audio.codec) == ((), "first", "copy")
    assert (tv.subtitles.languages, tv.subtitles.burn) == ((), False)


RULES = """rules:
  - name: already efficient
    when: {codec: [HEVC, av1], bitrate_below: 2.5Mb/s}
    action: copy
audio: {languages: [eng, original], keep: all}
subtitles: {languages: [eng], forced_only: true}
"""


def test_a_library_replaces_the_rules_whole_and_overrides_track_keys_one_by_one(folder: Path) -> None:
    own = "    rules: [{name: everything, action: skip}]\n    audio: {keep: first}\n    hdr: skip\n"
    config = load(edited(("    preset: movies\n", "    preset: movies\n" + own), ("", RULES))).config
    tv, movies = config.libraries

    assert [rule.name for rule in tv.rules] == ["already efficient"]
    assert tv.rules[0].when.codec == ("hevc", "av1") and tv.rules[0].when.bitrate_below == 2_500_000
    assert [rule.name for rule in movies.rules] == ["everything"]
    assert (tv.audio.keep, movies.audio.keep, movies.audio.languages) == ("all", "first", ("eng", "original"))
    assert (tv.hdr, movies.hdr) == ("copy", "skip")
    assert "already efficient" in effective_yaml(config)  # validate --show prints what each library gets


@pytest.mark.parametrize(
    "changes, expected",
    [
        pytest.param(
            [("", "hdr: hdr-preset\n")],
            ["config.yaml:17: at 'hdr': hdr must be copy, skip or a preset's name; preset 'hdr-preset' is not "
             "defined (known: movies, tv)"],
            id="an-hdr-preset-that-is-not-defined",
        ),
        pytest.param(
            [("", "audio: {languages: [english]}\n")],
            ["config.yaml:17: at 'audio.languages': language 'english' is not an ISO 639-2 code like 'eng', "
             "'jpn' or 'und', nor 'original'"],
            id="a-language-that-is-not-iso-639-2",
        ),
        pytest.param(
            [("", "rules: [{name: x, when: {bitrate_below: fast}, action: copy}]\n")],
            ["config.yaml:17: at 'rules[0].when.bitrate_below': a bitrate looks like 2.5Mb/s, 800kb/s or 64000 "
             "(b/s), got 'fast'"],
            id="a-bitrate-that-is-not-one",
        ),
        pytest.param(
            [("", "rules: [{name: x, action: skip, preset: tv}]\n")],
            ["config.yaml:17: at 'rules[0]': rule 'x': 'preset' is only for action: encode, not skip"],
            id="a-preset-on-a-rule-that-does-not-encode",
        ),
        pytest.param(
            [("", "rules: [{name: x, action: encode, preset: hdr10}]\n")],
            ["config.yaml:17: at 'rules[0].preset': rule 'x': preset 'hdr10' is not defined (known: movies, tv)"],
            id="a-rule-preset-that-is-not-defined",
        ),
    ],
)  # fmt: skip
def test_a_rule_mistake_is_explained_with_its_line_and_key(
    folder: Path, changes: list[Change], expected: list[str]
) -> None:
    assert problems(edited(*changes)) == expected


def test_the_schema_offers_the_rule_keys_at_the_top_and_per_library() -> None:
    from agent.config.models import json_schema

    schema = json_schema()
    library = schema["$defs"]["Library"]["properties"]

    for key in ("rules", "larger_output", "hdr", "audio", "subtitles", "order", "verify"):
        assert key in schema["properties"], key
        assert key in library, key
    assert schema["properties"]["order_across"]["enum"] == ["listed", "mixed"]
    assert "first whose 'when' holds decides" in schema["properties"]["rules"]["description"]
    assert "never burned in" in schema["properties"]["subtitles"]["description"]
