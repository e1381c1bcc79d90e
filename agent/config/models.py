"""The v1 config file as frozen pydantic models.

Every key of DESIGN.md's config is a field here with a description, so `hb2r schema` can
emit a JSON Schema editors use for completion. Models forbid unknown keys: a typo such as
`max_job:` must fail loudly, not silently fall back to a default. Checks that look at one
value live here; checks that relate several values (a preset that must exist, folders that
must not nest) live in `checks.py`, which can name both places.
"""

from __future__ import annotations

import ipaddress
import os.path
import re
import socket
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from agent.config.rules import Audio, LargerOutput, Rule, Subtitles
from agent.config.store_url import SQLITE, parse_postgres_url, redact_url
from agent.config.units import (
    Rate,
    TimeWindow,
    format_duration,
    format_size,
    parse_duration,
    parse_rate,
    parse_size,
    parse_window,
)

DEFAULT_EXTENSIONS = (".mkv", ".mp4", ".avi", ".m4v", ".mov", ".ts", ".mpg", ".wmv")
# Names of files still arriving: browsers, Resilio (.!sync), qBittorrent (.!qb), editors.
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".!sync", ".!qb")
CONTAINER_EXTENSIONS = {"mkv": ".mkv", "mp4": ".mp4", "webm": ".webm"}

# HandBrakeCLI options a preset's `args` may not carry: hb2r owns input, output, the
# progress format, and the preset/container, which have keys of their own.
RESERVED_ARGS = {
    "-i": "the input is the source file",
    "--input": "the input is the source file",
    "-o": "the output is chosen by hb2r",
    "--output": "the output is chosen by hb2r",
    "--json": "hb2r always passes --json",
    "-Z": "use the preset's 'handbrake' key",
    "--preset": "use the preset's 'handbrake' key",
    "--preset-import-file": "use the preset's 'import_file' key",
    "--preset-import-gui": "use the preset's 'import_file' key",
    "-f": "use the preset's 'container' key",
    "--format": "use the preset's 'container' key",
}


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Resolve `~` and paths relative to the config file's folder (passed as context)."""
    value = value.expanduser()
    if not value.is_absolute():
        base_dir = (info.context or {}).get("base_dir")
        if base_dir is None:
            raise ValueError(f"path {str(value)!r} must be absolute")
        value = Path(base_dir) / value
    return Path(os.path.normpath(value))


ConfigPath = Annotated[
    Path,
    AfterValidator(_resolve_path),
    WithJsonSchema({"type": "string", "description": "absolute, or relative to the config file"}),
]

Duration = Annotated[
    timedelta,
    PlainValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": ["string", "number"], "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"}),
]

Size = Annotated[
    int,
    PlainValidator(parse_size),
    PlainSerializer(format_size, return_type=str),
    WithJsonSchema({"type": ["string", "integer"], "pattern": r"^\d+(\.\d+)?([KMGT]i?B|B)?$"}),
]

Window = Annotated[
    TimeWindow,
    PlainValidator(parse_window),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d\d:\d\d-\d\d:\d\d$"}),
]

RateLimit = Annotated[
    Rate,
    PlainValidator(parse_rate),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+/(s|sec|min|minute|h|hour)$"}),
]

Percent = Annotated[int, Field(ge=1, le=100)]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(?::\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Paths(Model):
    archive: ConfigPath = Field(description="The archive: the Resilio Sync folder that receives transcodes.")
    state_dir: ConfigPath = Field(
        default=Path("/var/lib/hb2r"),
        description="Where hb2r keeps its SQLite state database and secrets (created 0700).",
    )
    archive_mode: str = Field(
        default="0664",
        pattern=r"^0?[0-7]{3}$",
        description="Octal mode of published files (e.g. '0664'); folders hb2r creates get it plus x where "
        "it has r ('0775'). Set explicitly, whatever hb2r's umask, so Resilio can read what hb2r publishes.",
    )
    archive_group: str | None = Field(
        default=None,
        min_length=1,
        description="Group given to published files and the folders hb2r creates (hb2r must be a member); "
        "default: the archive folder's own group.",
    )


# The queue's order within a library (agent.store.order), and how libraries take turns.
QueueOrderName = Literal["oldest", "newest", "smallest", "largest", "saving"]
OrderAcross = Literal["listed", "mixed"]


class VerifySettings(Model):
    decode: bool = Field(
        default=False,
        description="After the duration check, decode the whole output once with ffmpeg, at the encoders' "
        "niceness; any decode error fails the encode (nothing is published). Costs CPU: a fraction of the encode's.",
    )


class Library(Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="Short unique name (a-z, 0-9, _ and -).")
    source: ConfigPath = Field(description="The watched folder. hb2r only ever reads it.")
    output: str = Field(description="Folder under the archive that receives this library's transcodes.")
    preset: str = Field(description="Name of an entry under 'presets'.")
    extensions: tuple[str, ...] = Field(
        default=DEFAULT_EXTENSIONS,
        min_length=1,
        description="File extensions to transcode, with the dot; compared case-insensitively.",
    )
    stable_after: Duration = Field(
        default=timedelta(seconds=60),
        description="A file must be unchanged this long before it is picked up (it may still be copying).",
    )
    on_preset_change: Literal["keep", "reencode"] = Field(
        default="keep",
        description="When the preset changes after encoding: keep the output and report drift, or re-encode.",
    )
    verify: VerifySettings | None = Field(
        default=None,
        description="How this library's outputs are checked before they are published; keys not set here "
        "come from the top-level 'verify'.",
    )
    order: QueueOrderName | None = Field(
        default=None,
        description="Which of this library's jobs start first: oldest, newest, smallest or largest source, "
        "or saving (the largest estimated saving); default: the top-level 'order'.",
    )
    rules: tuple[Rule, ...] | None = Field(
        default=None, description="This library's rules, replacing the top-level 'rules' whole; first match wins."
    )
    larger_output: LargerOutput | None = Field(
        default=None, description="As the top-level 'larger_output'; keys not set here come from there."
    )
    hdr: str | None = Field(default=None, min_length=1, description="As the top-level 'hdr'.")
    audio: Audio | None = Field(
        default=None, description="As the top-level 'audio'; keys not set here come from there."
    )
    subtitles: Subtitles | None = Field(
        default=None, description="As the top-level 'subtitles'; keys not set here come from there."
    )

    @field_validator("output")
    @classmethod
    def _output_is_a_plain_subfolder(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not value or path.is_absolute() or ".." in path.parts or value.startswith("."):
            raise ValueError(
                f"output must be a folder name under the archive, like 'TV' (not absolute, no '..', "
                f"not hidden), got {value!r}"
            )
        return str(path)

    @field_validator("extensions")
    @classmethod
    def _extensions_have_dots(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for extension in value:
            if not re.fullmatch(r"\.[A-Za-z0-9!]{1,12}", extension):
                raise ValueError(f"extension {extension!r} must look like '.mkv' (a dot, then letters or digits)")
            if extension.lower() in PARTIAL_SUFFIXES:
                raise ValueError(f"extension {extension!r} marks files still being written; it cannot be transcoded")
        return tuple(dict.fromkeys(extension.lower() for extension in value))


class Preset(Model):
    handbrake: str = Field(
        min_length=1, description="HandBrake preset name, e.g. 'Fast 1080p30' (see HandBrakeCLI --preset-list)."
    )
    container: Literal["mkv", "mp4", "webm"] = Field(
        default="mkv", description="Output container; sets the output extension."
    )
    args: tuple[str, ...] = Field(
        default=(), description="Extra HandBrakeCLI options; not input, output, --json, preset or format."
    )
    import_file: ConfigPath | None = Field(
        default=None, description="A preset file exported from HandBrake (--preset-import-file)."
    )

    @field_validator("args")
    @classmethod
    def _args_leave_hb2r_options_alone(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arg in value:
            option = arg.split("=", 1)[0]
            if option in RESERVED_ARGS:
                raise ValueError(f"args may not contain {option!r}: {RESERVED_ARGS[option]}")
        return value

    @property
    def extension(self) -> str:
        return CONTAINER_EXTENSIONS[self.container]


class HandBrake(Model):
    binary: str = Field(
        default="HandBrakeCLI", min_length=1, description="HandBrakeCLI executable: a name on PATH or a path."
    )
    stall_timeout: Duration = Field(
        default=timedelta(minutes=10),
        description="An encode whose progress has not moved for this long (not counting time suspended under "
        "memory pressure) is hung: its processes are killed and the job is retried later, the attempt not counted.",
    )


class Scan(Model):
    interval: Duration = Field(
        default=timedelta(seconds=60),
        description="Time between timed reconcile passes. Libraries watched with inotify also get a pass within "
        "a second of a change; libraries that are polled (network or FUSE mounts, watch limit reached) "
        "notice new files only at this interval.",
    )
    full_interval: Duration = Field(
        default=timedelta(hours=6),
        description="Time between full passes, which list every folder and stat every file; the passes "
        "between list only the folders that changed (their mtime moved, inotify marked them, or they hold "
        "files still settling). The safety net for changes no folder mtime or event shows: a file rewritten "
        "in place after it had settled. At least `interval`.",
    )
    max_vanish_percent: Percent = Field(
        default=50,
        description="Pause a library whose file count falls by more than this percent since the last good scan "
        "(an unmounted disk must not look like deleted files).",
    )

    @field_validator("interval")
    @classmethod
    def _interval_is_at_least_a_second(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError(f"interval must be at least 1s, got {format_duration(value)}")
        return value

    @model_validator(mode="after")
    def _full_pass_not_more_often_than_passes(self) -> Scan:
        if self.full_interval < self.interval:
            raise ValueError(
                f"full_interval ({format_duration(self.full_interval)}) must be at least interval "
                f"({format_duration(self.interval)}): a full pass cannot come more often than passes do"
            )
        return self


def _max_jobs(value: object) -> int | Literal["auto"]:
    if value == "auto":
        return "auto"
    try:
        number = int(str(value)) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not 1 <= number <= 64:
        raise ValueError(f"max_jobs must be 'auto' or a whole number from 1 to 64, got {value!r}")
    return number


class Limits(Model):
    cpu_percent: Percent = Field(default=80, description="Start no job while CPU use is at or above this percent.")
    memory_percent: Percent = Field(
        default=80, description="Start no job while memory use is at or above this percent."
    )
    min_free_memory: Size = Field(
        default=2 * 1024**3, description="Start no job while less memory than this is available."
    )
    min_free_disk: Size = Field(
        default=5 * 1024**3, description="Keep this much free in the archive, plus the estimated output size."
    )
    max_jobs: Annotated[
        int | Literal["auto"],
        BeforeValidator(_max_jobs),
        WithJsonSchema({"anyOf": [{"const": "auto"}, {"type": "integer", "minimum": 1, "maximum": 64}]}),
    ] = Field(default="auto", description="Concurrent encodes: 'auto' (from the cores) or 1-64.")
    nice: int = Field(default=10, ge=0, le=19, description="Niceness of the encoders (0-19).")
    windows: tuple[Window, ...] = Field(
        default=(), description="Times of day when jobs may start, e.g. ['22:00-07:00']; none = any time."
    )


class Retry(Model):
    attempts: int = Field(default=3, ge=1, le=100, description="Failures before a job is dead-lettered.")
    backoff: Duration = Field(
        default=timedelta(seconds=30), description="Wait before the first retry; doubles each time."
    )
    max_backoff: Duration = Field(default=timedelta(hours=1), description="Longest wait between retries.")


def _parse_network(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Given an address or CIDR network, return the network; raise ValueError saying what is wrong."""
    if not isinstance(value, str):
        raise ValueError(f"a trusted proxy is an IP address or network like 10.0.0.0/8 or ::1, got {value!r}")
    try:
        return ipaddress.ip_network(value.strip())
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"a trusted proxy is an IP address or network like 10.0.0.0/8 or ::1, got {value!r}"
        ) from None
    raise ValueError(f"{value!r} has bits set beyond its /{network.prefixlen} prefix; write {network}")


ProxyNetwork = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network,
    PlainValidator(_parse_network),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "an IP address or a CIDR network"}),
]


class Server(Model):
    listen: str = Field(default="127.0.0.1:8080", description="host:port (or [v6]:port) of the HTTP service.")
    cors_origins: tuple[str, ...] = Field(default=(), description="Origins allowed to call the API from a browser.")
    trusted_proxies: tuple[ProxyNetwork, ...] = Field(
        default=(),
        description="Reverse proxies (IP addresses or CIDR networks) whose X-Forwarded-For header names the "
        "client; from any other peer the header is ignored. Empty: the peer is the client.",
    )

    @field_validator("listen")
    @classmethod
    def _listen_is_host_port(cls, value: str) -> str:
        match = _LISTEN.match(value)
        if not match or not 1 <= int(match.group("port")) <= 65535:
            raise ValueError(f"listen must be host:port like 127.0.0.1:8080 or [::1]:8080, got {value!r}")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(f"CORS origin must look like https://host[:port] (no path), got {origin!r}")
        return value


class Auth(Model):
    jwt_secret_file: ConfigPath = Field(
        default=Path("/var/lib/hb2r/jwt.secret"),
        description="File with the JWT signing secret; made (0600, 32 random bytes) if missing.",
    )
    jwt_secret: str | None = Field(
        default=None,
        repr=False,
        description="The JWT signing secret itself, usually ${JWT_SECRET_KEY:-} (32+ characters); "
        "when set, jwt_secret_file is not used. Empty means unset.",
    )
    session_timeout: Duration = Field(default=timedelta(minutes=60), description="Lifetime of a login token.")
    bcrypt_rounds: int = Field(default=12, ge=4, le=31, description="bcrypt cost for hashes made by hb2r.")
    login_rate_limit: RateLimit = Field(
        default=Rate(5, 60), description="Login attempts allowed per client, e.g. 5/min."
    )

    @field_validator("jwt_secret")
    @classmethod
    def _secret_is_long_enough(cls, value: str | None) -> str | None:
        if not value:
            return None
        if len(value.encode("utf-8")) < 32:
            raise ValueError(
                f"jwt_secret must be at least 32 bytes, got {len(value.encode('utf-8'))}; "
                "make one with: head -c 32 /dev/urandom | base64"
            )
        return value

    @field_validator("session_timeout")
    @classmethod
    def _session_is_at_least_a_minute(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError(f"session_timeout must be at least 1m, got {format_duration(value)}")
        return value


class StoreSettings(Model):
    url: str = Field(
        default=SQLITE,
        repr=False,
        description="Where the state lives: 'sqlite' (<state_dir>/hb2r.db, one host) or "
        "postgresql://user@host[:port]/database, shared by several hosts; usually ${HB2R_STORE_URL:-sqlite}.",
    )
    password_file: ConfigPath | None = Field(
        default=None,
        description="File holding the PostgreSQL password (kept out of the URL and the config).",
    )

    lease: Duration = Field(
        default=timedelta(seconds=30),
        description="How long a host holds a claimed job (and the planner its turn) without a heartbeat; "
        "heartbeats come every third of it. A dead host's job runs elsewhere after about this long.",
    )
    host_losses: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Hosts that may die holding one job before it is dead-lettered (apart from retry.attempts).",
    )

    @field_validator("lease")
    @classmethod
    def _lease_in_range(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=3) <= value <= timedelta(minutes=10):
            raise ValueError(f"lease must be between 3s and 10m, got {format_duration(value)}")
        return value

    @field_validator("url")
    @classmethod
    def _url_is_sqlite_or_postgres(cls, value: str) -> str:
        value = value.strip() or SQLITE
        if value != SQLITE:
            parse_postgres_url(value)
        return value

    @field_validator("password_file")
    @classmethod
    def _password_in_one_place(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        url = info.data.get("url", SQLITE)
        if value is not None and url == SQLITE:
            raise ValueError("password_file is for a PostgreSQL store; store.url is 'sqlite'")
        if value is not None and parse_postgres_url(url).has_password:
            raise ValueError(f"the password is both in store.url ({redact_url(url)}) and in password_file: keep one")
        return value

    @property
    def is_postgres(self) -> bool:
        return self.url != SQLITE


def _notify_events(value: object) -> object:
    """Given `events:` as written, return it; raise ValueError naming an unknown event and the known ones."""
    from agent.notify.events import KNOWN_KINDS

    if not isinstance(value, list | tuple):
        return value  # pydantic says it must be a list
    known = [str(kind) for kind in KNOWN_KINDS]
    for name in value:
        if name not in known:
            raise ValueError(f"unknown event {name!r} (known: {', '.join(known)})")
    if isinstance(value, list) and not value:  # written `events: []` (the default is the empty tuple: every event)
        raise ValueError("events is empty: leave the key out for every event")
    return value


class NotifyTarget(Model):
    url: str = Field(
        repr=False,
        description="Apprise URL of the service (ntfy://, gotifys://, discord://, mailtos://, json://, ...); a secret: "
        "usually ${NTFY_URL}. Never logged, redacted when the config is shown.",
    )
    events: Annotated[tuple[str, ...], BeforeValidator(_notify_events)] = Field(
        default=(),
        description="The events to send: job_dead, library_paused, library_error, archive_low_space, "
        "encode_stalled, queue_drained, host_lost, started_after_crash; left out: all of them.",
    )
    min_interval: Duration = Field(
        default=timedelta(minutes=10),
        description="Repeats of one event about one subject (a library, a host) within this long are held and "
        "sent as one 'and N more' message once it has passed; 0s sends each.",
    )
    attempts: int = Field(default=4, ge=1, le=20, description="Tries per message before it counts as failed.")
    backoff: Duration = Field(
        default=timedelta(seconds=5), description="Wait before the second try; doubles each time (at most 5m)."
    )

    @field_validator("url")
    @classmethod
    def _apprise_understands(cls, value: str) -> str:
        from agent.notify.deliver import url_problem

        problem = url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value.strip()


def _machine_name() -> str:
    return socket.gethostname().split(".")[0] or "localhost"


class Host(Model):
    name: str = Field(
        default_factory=_machine_name,
        pattern=_NAME,
        description="Host name (letters, digits, _ . and -; up to 64): names this host among those sharing a "
        "store; default: the machine's hostname.",
    )

    @field_validator("name", mode="before")
    @classmethod
    def _empty_is_the_machine(cls, value: object) -> object:
        return _machine_name() if value in ("", None) else value


class User(Model):
    name: str = Field(pattern=_NAME, description="Login name (letters, digits, _ . and -; up to 64).")
    role: Literal["admin", "user"] = Field(description="'user' reads; 'admin' also acts.")
    password_hash: str = Field(description="bcrypt hash made by 'hb2r hash-password'.")

    @field_validator("password_hash")
    @classmethod
    def _is_bcrypt(cls, value: str) -> str:
        if not _BCRYPT_HASH.match(value):
            raise ValueError("password_hash is not a bcrypt hash; make one with 'hb2r hash-password'")
        return value


class Config(Model):
    """The whole desired state."""

    version: Literal[1] = Field(description="Config format version; this is version 1.")
    paths: Paths
    libraries: tuple[Library, ...] = Field(default=(), description="Watched folders.")
    presets: dict[str, Preset] = Field(default_factory=dict, description="Named encoding presets.")
    handbrake: HandBrake = Field(default_factory=HandBrake)
    scan: Scan = Field(default_factory=Scan)
    limits: Limits = Field(default_factory=Limits)
    retry: Retry = Field(default_factory=Retry)
    server: Server = Field(default_factory=Server)
    auth: Auth = Field(default_factory=Auth)
    users: tuple[User, ...] = Field(default=(), description="Who may use the API.")
    store: StoreSettings = Field(default_factory=StoreSettings)
    host: Host = Field(default_factory=Host)
    notify: tuple[NotifyTarget, ...] = Field(
        default=(), description="Where to send notifications (Apprise URLs), and which events each wants."
    )

    verify: VerifySettings = Field(
        default_factory=VerifySettings,
        description="Default output checks for every library; a library's own 'verify' keys win.",
    )

    order: QueueOrderName = Field(
        default="oldest",
        description="Which jobs start first in each library that sets no 'order' of its own: oldest, newest, "
        "smallest or largest source, or saving (the largest estimated saving). A job an admin moved to the front "
        "goes before all.",
    )
    order_across: OrderAcross = Field(
        default="listed",
        description="How libraries take turns: 'listed' starts the first library in the list that has a job "
        "waiting; 'mixed' compares every library's next job by the top-level 'order'.",
    )

    rules: tuple[Rule, ...] = Field(
        default=(),
        description="Media-aware rules for every library without its own: the first whose 'when' holds decides "
        "encode, copy or skip; none: encode.",
    )
    larger_output: LargerOutput = Field(
        default_factory=LargerOutput,
        description="What to do when a verified output is not enough smaller than its source.",
    )
    hdr: str = Field(
        default="copy",
        min_length=1,
        description="HDR and Dolby Vision sources: copy, skip, or the name of an HDR-capable entry of 'presets' "
        "(10-bit x265 keeping HDR10 metadata); never an 8-bit encode by default.",
    )
    audio: Audio = Field(default_factory=Audio, description="Which audio tracks to keep, and how.")
    subtitles: Subtitles = Field(
        default_factory=Subtitles, description="Which subtitles to keep; never burned in unless asked."
    )

    @model_validator(mode="after")
    def _libraries_inherit_defaults(self) -> Config:
        """Give each library the top-level defaults for the keys it does not set itself, so
        `validate --show` prints what each library really gets."""
        libraries = tuple(
            library.model_copy(
                update={
                    "verify": _merged(self.verify, library.verify),
                    "order": library.order or self.order,
                    "rules": self.rules if library.rules is None else library.rules,
                    "larger_output": _merged(self.larger_output, library.larger_output),
                    "hdr": library.hdr or self.hdr,
                    "audio": _merged(self.audio, library.audio),
                    "subtitles": _merged(self.subtitles, library.subtitles),
                }
            )
            for library in self.libraries
        )
        object.__setattr__(self, "libraries", libraries)
        return self

    def verify_for(self, library: Library) -> VerifySettings:
        """Return the output checks of a library: its own keys, the top-level defaults for the rest."""
        return _merged(self.verify, library.verify)

    def order_for(self, library: Library) -> QueueOrderName:
        """Return which of a library's jobs start first: its own order, else the top-level one."""
        return library.order or self.order

    def preset_for(self, library: Library) -> Preset:
        return self.presets[library.preset]


_Settings = TypeVar("_Settings", bound=BaseModel)


def _merged(default: _Settings, own: _Settings | None) -> _Settings:
    """Given the top-level settings and a library's own (None: not set), return the library's effective ones."""
    if own is None:
        return default
    return default.model_copy(update=own.model_dump(exclude_unset=True))


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the config file."""
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hb2r config (version 1)"
    return schema
