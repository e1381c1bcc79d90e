"""Users and auth through the HTTP API, for real: config file, SQLite, bcrypt, JWT and aiohttp.

Who may log in, what a token allows and for how long, how every kind of refusal looks to a
client, the login rate limit, the generated first admin, the JWT secret, bcrypt kept off the
event loop, and the log never holding a secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import stat
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import structlog
from aiohttp import ClientResponse

from agent import logs
from agent.api.app import init_app
from agent.auth import jwt_secret, tokens, user_sync
from agent.auth.jwt_secret import SecretError
from agent.config import load_config
from agent.config.models import Auth, Config
from agent.passwords import hash_password
from agent.store import users as stored_users
from tests.support.api import ADMIN_HASH, ADMIN_PASSWORD, VIEWER_HASH, VIEWER_PASSWORD, Api, build_context, write_config
from tests.support.api_calls import expired_token
from tests.support.cli import hb2r

from .conftest import MakeApi

ADMIN_ROUTES = (
    ("POST", "/api/jobs/1/retry"),
    ("POST", "/api/jobs/1/cancel"),
    ("POST", "/api/libraries/tv/pause"),
    ("POST", "/api/libraries/tv/resume"),
    ("POST", "/api/scan"),
    ("GET", "/api/config"),
)
DEADLINE_SECONDS = 60.0
REPO = Path(__file__).resolve().parents[2]


# --- helpers ---------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_line(name: str, role: str, password_hash: str) -> str:
    return f'  - {{name: {name}, role: {role}, password_hash: "{password_hash}"}}\n'


DEFAULT_USERS = user_line("admin", "admin", ADMIN_HASH) + user_line("viewer", "user", VIEWER_HASH)


def reload_users(api: Api, users: str, **options: Any) -> Config:
    """Rewrite api's config with these users and apply it as a reload does; return the new config."""
    root = api.context.state.config.paths.state_dir.parent
    config = load_config(write_config(root, users=users, **options)).config
    user_sync.sync_users(api.context.state.store, config, now=datetime.now(UTC), log=api.context.log)
    api.context.state.config = config
    return config


async def login(api: Api, username: str, password: str) -> ClientResponse:
    return await api.client.post("/api/auth/login", json={"username": username, "password": password})


async def me(api: Api, token: str) -> ClientResponse:
    return await api.client.get("/api/auth/me", headers=bearer(token))


async def assert_unauthorized(response: ClientResponse, *, says: str = "") -> str:
    """Assert response is a 401 a client can act on; return its message."""
    assert response.status == 401, await response.text()
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = await response.json()
    assert body["error"] == "unauthorized"
    assert isinstance(body["message"], str) and body["message"]
    assert says in body["message"]
    return str(body["message"])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made_token(header: dict[str, Any], claims: dict[str, Any], *, key: bytes | None = None) -> str:
    """Return header.claims.signature; the signature is HMAC-SHA256 with key, or empty without one."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = b"" if key is None else hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def valid_claims(name: str, password_hash: str) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": name, "jti": "hand-made", "iat": now, "exp": now + 600, "pwd": tokens.password_digest(password_hash)}


def parse_utc(text: str) -> datetime:
    assert text.endswith("+00:00"), text
    return datetime.fromisoformat(text)


def log_events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The agent's log as JSON lines, every level, for the length of one test."""
    saved = structlog.get_config()
    stream = io.StringIO()
    logs.configure(stream=stream, json=True, level="debug")
    yield stream
    structlog.configure(**saved)


# --- log in, who am I, log out ---------------------------------------------------------------


async def test_login_answers_a_token_its_expiry_and_the_user(api: Api) -> None:
    before = datetime.now(UTC)
    response = await login(api, "admin", ADMIN_PASSWORD)
    after = datetime.now(UTC)

    assert response.status == 200
    body = await response.json()
    assert set(body) == {"token", "expires_at", "user"}
    assert body["user"] == {"name": "admin", "role": "admin"}
    assert isinstance(body["token"], str) and body["token"].count(".") == 2
    timeout = api.context.state.config.auth.session_timeout
    expires_at = parse_utc(body["expires_at"])
    assert before + timeout - timedelta(seconds=1) <= expires_at <= after + timeout


async def test_me_answers_the_logged_in_user(api: Api) -> None:
    body = await (await login(api, "viewer", VIEWER_PASSWORD)).json()

    response = await me(api, body["token"])

    assert response.status == 200
    assert await response.json() == {"user": {"name": "viewer", "role": "user"}, "expires_at": body["expires_at"]}


async def test_the_bearer_scheme_is_case_insensitive(api: Api) -> None:
    token = await api.login("viewer", VIEWER_PASSWORD)

    response = await api.client.get("/api/auth/me", headers={"Authorization": f"bearer {token}"})

    assert response.status == 200


async def test_logout_ends_that_token_only(api: Api) -> None:
    first = await api.login("viewer", VIEWER_PASSWORD)
    second = await api.login("viewer", VIEWER_PASSWORD)

    response = await api.client.post("/api/auth/logout", headers=bearer(first))

    assert response.status == 200
    assert await response.json() == {"logged_out": True}
    await assert_unauthorized(await me(api, first), says="logged out")
    await assert_unauthorized(await api.client.post("/api/auth/logout", headers=bearer(first)))
    assert (await me(api, second)).status == 200


async def test_logging_in_again_after_logout_works(api: Api) -> None:
    token = await api.login("viewer", VIEWER_PASSWORD)
    await api.client.post("/api/auth/logout", headers=bearer(token))

    again = await api.login("viewer", VIEWER_PASSWORD)

    assert again != token
    assert (await me(api, again)).status == 200


# --- refusals: 401 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="no-header"),
        pytest.param("Bearer", id="bearer-alone"),
        pytest.param("Bearer ", id="bearer-and-a-space"),
        pytest.param("Basic dmlld2VyOnZpZXdlci1wYXNzd29yZC0y", id="basic"),
        pytest.param("Bearer a b", id="two-tokens"),
        pytest.param("Bearer not-a-jwt", id="not-a-jwt"),
        pytest.param("Token eyJhbGciOiJIUzI1NiJ9.e30.c2ln", id="other-scheme"),
    ],
)
async def test_a_missing_or_malformed_authorization_header_is_a_401(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}

    response = await api.client.get("/api/auth/me", headers=headers)

    await assert_unauthorized(response)


async def test_a_token_signed_with_another_secret_is_refused(api: Api) -> None:
    claims = valid_claims("viewer", VIEWER_HASH)
    control = jwt.encode(claims, api.context.secret, algorithm="HS256")
    forged = jwt.encode(claims, b"another-secret-of-at-least-32-bytes!!", algorithm="HS256")

    assert (await me(api, control)).status == 200  # the same claims, rightly signed, pass
    await assert_unauthorized(await me(api, forged), says="not valid")


@pytest.mark.parametrize(
    ("header", "signed"),
    [
        pytest.param({"alg": "none", "typ": "JWT"}, False, id="alg-none-empty-signature"),
        pytest.param({"alg": "None", "typ": "JWT"}, False, id="alg-None-empty-signature"),
        pytest.param({"alg": "none", "typ": "JWT"}, True, id="alg-none-with-a-signature"),
        pytest.param({"alg": "RS256", "typ": "JWT"}, True, id="rs256-header-hmac-signature"),
        pytest.param({"typ": "JWT"}, True, id="no-alg"),
    ],
)
async def test_a_token_naming_another_algorithm_is_refused(api: Api, header: dict[str, Any], signed: bool) -> None:
    claims = valid_claims("admin", ADMIN_HASH)
    token = hand_made_token(header, claims, key=api.context.secret if signed else None)
    control = hand_made_token({"alg": "HS256", "typ": "JWT"}, claims, key=api.context.secret)

    assert (await me(api, control)).status == 200  # the hand-made token is right but for its algorithm
    await assert_unauthorized(await me(api, token), says="not valid")
    await assert_unauthorized(await api.client.get("/api/config", headers=bearer(token)))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_a_token_signed_with_hs512_and_the_right_secret_is_refused(api: Api) -> None:
    token = jwt.encode(valid_claims("admin", ADMIN_HASH), api.context.secret, algorithm="HS512")

    await assert_unauthorized(await me(api, token), says="not valid")


async def test_a_viewer_token_with_its_name_changed_to_admin_is_refused(api: Api) -> None:
    header, _, signature = (await api.login("viewer", VIEWER_PASSWORD)).split(".")
    claims = valid_claims("admin", ADMIN_HASH)
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"

    await assert_unauthorized(await me(api, tampered), says="not valid")
    await assert_unauthorized(await api.client.get("/api/config", headers=bearer(tampered)))


@pytest.mark.parametrize("missing", ["sub", "jti", "exp", "iat", "pwd"])
async def test_a_rightly_signed_token_without_a_claim_is_refused(api: Api, missing: str) -> None:
    claims = valid_claims("viewer", VIEWER_HASH)
    del claims[missing]

    token = jwt.encode(claims, api.context.secret, algorithm="HS256")

    await assert_unauthorized(await me(api, token), says="not valid")


async def test_a_rightly_signed_token_for_an_unknown_user_is_refused(api: Api) -> None:
    token = jwt.encode(valid_claims("mallory", VIEWER_HASH), api.context.secret, algorithm="HS256")

    await assert_unauthorized(await me(api, token), says="no longer valid")


async def test_an_expired_token_is_refused(api: Api) -> None:
    await assert_unauthorized(await me(api, expired_token(api)), says="expired")


async def test_a_token_is_valid_until_its_expiry_and_not_after(api: Api) -> None:
    viewer = stored_users.find(api.context.state.store.database, "viewer")
    assert viewer is not None
    issued_at = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    issued = tokens.issue_token(secret=api.context.secret, user=viewer, lifetime=timedelta(minutes=60), now=issued_at)
    store, secret = api.context.state.store, api.context.secret

    session = tokens.authenticate(
        store, secret=secret, token=issued.token, now=issued.expires_at - timedelta(seconds=1)
    )
    with pytest.raises(tokens.AuthError, match="expired"):
        tokens.authenticate(store, secret=secret, token=issued.token, now=issued.expires_at)

    assert session.user == "viewer"
    assert session.expires_at == issued.expires_at == datetime(2030, 1, 1, 13, 0, tzinfo=UTC)


async def test_a_user_removed_from_the_config_is_refused_at_once(api: Api) -> None:
    token = await api.login("viewer", VIEWER_PASSWORD)
    admin_token = await api.login("admin", ADMIN_PASSWORD)

    reload_users(api, user_line("admin", "admin", ADMIN_HASH))

    await assert_unauthorized(await me(api, token), says="no longer valid")
    await assert_unauthorized(await login(api, "viewer", VIEWER_PASSWORD))
    assert (await me(api, admin_token)).status == 200


async def test_a_changed_password_refuses_old_tokens_and_the_old_password(api: Api) -> None:
    token = await api.login("viewer", VIEWER_PASSWORD)
    new_password = "a-new-viewer-password"

    reload_users(
        api,
        user_line("admin", "admin", ADMIN_HASH) + user_line("viewer", "user", hash_password(new_password, rounds=4)),
    )

    await assert_unauthorized(await me(api, token), says="no longer valid")
    await assert_unauthorized(await login(api, "viewer", VIEWER_PASSWORD))
    assert (await login(api, "viewer", new_password)).status == 200


async def test_a_reload_that_changes_nothing_keeps_tokens_valid(api: Api) -> None:
    token = await api.login("viewer", VIEWER_PASSWORD)

    reload_users(api, DEFAULT_USERS)

    assert (await me(api, token)).status == 200


# --- roles: 403 --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES, ids=[f"{m} {p}" for m, p in ADMIN_ROUTES])
async def test_a_viewer_is_forbidden_admin_routes_and_nothing_happens(api: Api, method: str, path: str) -> None:
    response = await api.client.request(method, path, headers=await api.viewer())

    assert response.status == 403
    body = await response.json()
    assert body["error"] == "forbidden"
    assert "viewer" in body["message"] and "admin" in body["message"]
    assert "tv" not in api.context.state.held_libraries
    assert api.context.scans == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES, ids=[f"{m} {p}" for m, p in ADMIN_ROUTES])
async def test_admin_routes_refuse_a_missing_token_with_401(api: Api, method: str, path: str) -> None:
    await assert_unauthorized(await api.client.request(method, path))


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES, ids=[f"{m} {p}" for m, p in ADMIN_ROUTES])
async def test_an_admin_may_use_admin_routes(api: Api, method: str, path: str) -> None:
    response = await api.client.request(method, path, headers=await api.admin())

    assert response.status not in (401, 403), await response.text()
    assert response.status < 500


async def test_the_config_an_admin_reads_holds_no_password_hash(api: Api) -> None:
    response = await api.client.get("/api/config", headers=await api.admin())

    text = await response.text()
    assert response.status == 200
    assert ADMIN_HASH not in text and VIEWER_HASH not in text


async def test_a_role_change_applies_at_once_to_existing_tokens(api: Api) -> None:
    token = await api.login("viewer", VIEWER_PASSWORD)
    assert (await api.client.get("/api/config", headers=bearer(token))).status == 403

    reload_users(api, user_line("admin", "admin", ADMIN_HASH) + user_line("viewer", "admin", VIEWER_HASH))

    assert (await api.client.get("/api/config", headers=bearer(token))).status == 200
    assert (await (await me(api, token)).json())["user"] == {"name": "viewer", "role": "admin"}

    reload_users(api, DEFAULT_USERS)

    assert (await api.client.get("/api/config", headers=bearer(token))).status == 403


# --- wrong password versus unknown user --------------------------------------------------------


async def test_wrong_password_and_unknown_user_get_the_same_answer(api: Api) -> None:
    wrong = await login(api, "viewer", "not-the-password")
    unknown = await login(api, "nobody", "not-the-password")

    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()
    assert wrong.headers.get("WWW-Authenticate") == unknown.headers.get("WWW-Authenticate")
    assert wrong.headers["Content-Type"] == unknown.headers["Content-Type"]


@pytest.mark.parametrize("rounds", [4, 10], ids=["fixture-cost-4", "cost-10"])
async def test_wrong_password_and_unknown_user_take_the_same_time(make_api: MakeApi, rounds: int) -> None:
    """Medians of interleaved attempts: a difference would tell an attacker which names exist.

    Cost 4 is the fixture's; at cost 10 bcrypt dominates the HTTP overhead, so an unknown name
    answered without a bcrypt check would show plainly."""
    password_hash = ADMIN_HASH if rounds == 4 else hash_password(ADMIN_PASSWORD, rounds=rounds)
    api = await make_api(users=user_line("admin", "admin", password_hash))

    async def seconds_for(username: str) -> float:
        started = time.perf_counter()
        response = await login(api, username, "not-the-password")
        await response.read()
        assert response.status == 401
        return time.perf_counter() - started

    wrong: list[float] = []
    unknown: list[float] = []
    for _ in range(7):
        wrong.append(await seconds_for("admin"))
        unknown.append(await seconds_for("nobody"))

    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 <= ratio <= 2.0, f"unknown {unknown} versus wrong {wrong}"


# --- rate limit --------------------------------------------------------------------------------


async def test_the_fourth_attempt_in_a_minute_is_refused_with_retry_after(make_api: MakeApi) -> None:
    api = await make_api(rate="3/min")
    assert (await login(api, "viewer", "wrong-1")).status == 401
    assert (await login(api, "viewer", "wrong-2")).status == 401
    assert (await login(api, "viewer", VIEWER_PASSWORD)).status == 200  # successes count too

    refused = await login(api, "viewer", VIEWER_PASSWORD)

    assert refused.status == 429
    retry_after = refused.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    body = await refused.json()
    assert body["error"] == "too_many_requests"
    assert retry_after in body["message"]


async def test_the_limit_holds_for_another_name_from_the_same_client(make_api: MakeApi) -> None:
    api = await make_api(rate="3/min")
    for attempt in range(12):  # 3 a name, 4 times that from one client
        assert (await login(api, f"guess{attempt}", "wrong")).status == 401

    refused = await login(api, "admin", ADMIN_PASSWORD)

    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1


async def test_refused_attempts_do_not_check_the_password(make_api: MakeApi, log_output: io.StringIO) -> None:
    api = await make_api(rate="3/min")
    for _ in range(3):
        await login(api, "viewer", "wrong")

    for _ in range(5):
        assert (await login(api, "viewer", VIEWER_PASSWORD)).status == 429

    events = [event["event"] for event in log_events(log_output)]
    assert events.count("login failed") == 3
    assert events.count("login refused: too many attempts") == 5
    assert "login" not in events


async def login_from(
    api: Api, address: str, username: str, password: str, *, forwarded_for: str | None = None
) -> tuple[int, float]:
    """Log in over a connection from the loopback address `address` (127.0.0.0/8 is all this host's);
    return the answer's status and how long it took."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    started = time.perf_counter()
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0))) as session,
        session.post(
            api.client.make_url("/api/auth/login"), json={"username": username, "password": password}, headers=headers
        ) as response,
    ):
        await response.read()
        return response.status, time.perf_counter() - started


async def test_bad_logins_for_a_name_from_one_address_do_not_lock_that_user_out_elsewhere(make_api: MakeApi) -> None:
    api = await make_api(rate="5/min")
    for _ in range(5):
        assert (await login_from(api, "127.0.0.2", "ADMIN", "guess"))[0] == 401

    assert (await login_from(api, "127.0.0.2", "admin", ADMIN_PASSWORD))[0] == 429  # the guesser stays limited
    for _ in range(3):  # and keeps trying, as a lock-out would need
        assert (await login_from(api, "127.0.0.2", "Admin", "guess"))[0] == 429
        assert (await login_from(api, "127.0.0.3", "admin", ADMIN_PASSWORD))[0] == 200


async def test_one_address_may_try_a_few_names_then_is_limited_for_all(make_api: MakeApi) -> None:
    api = await make_api(rate="2/min")
    statuses = [(await login_from(api, "127.0.0.2", f"name{number}", "guess"))[0] for number in range(8)]

    assert statuses == [401] * 8  # 2 per name, 4 times that in all
    assert (await login_from(api, "127.0.0.2", "viewer", VIEWER_PASSWORD))[0] == 429
    assert (await login_from(api, "127.0.0.3", "viewer", VIEWER_PASSWORD))[0] == 200


async def test_failures_for_one_name_from_many_addresses_are_answered_ever_more_slowly(make_api: MakeApi) -> None:
    api = await make_api(rate="2/min")
    free = [await login_from(api, address, "viewer", "guess") for address in ("127.0.0.2", "127.0.0.3")]
    slowed = await login_from(api, "127.0.0.4", "viewer", "guess")  # the third failure for viewer
    right = await login_from(api, "127.0.0.5", "viewer", VIEWER_PASSWORD)

    assert [status for status, _ in free] == [401, 401]
    assert slowed[0] == 401 and slowed[1] >= 1.0
    assert right[0] == 200 and right[1] < slowed[1]  # the right password is never held back


async def test_x_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(
    make_api: MakeApi, log_output: io.StringIO
) -> None:
    api = await make_api(rate="2/min", extra_server="trusted_proxies: ['127.0.0.3']")
    for number in range(8):  # a new made-up client address each time
        assert (await login_from(api, "127.0.0.2", f"n{number}", "guess", forwarded_for=f"10.0.0.{number}"))[0] == 401

    refused = await login_from(api, "127.0.0.2", "n9", "guess", forwarded_for="10.0.0.99")

    assert refused[0] == 429
    clients = {event["client"] for event in log_events(log_output) if event["event"] == "login failed"}
    assert clients == {"127.0.0.2"}


async def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(
    make_api: MakeApi, log_output: io.StringIO
) -> None:
    api = await make_api(rate="2/min", extra_server="trusted_proxies: ['127.0.0.3/32', '::1']")
    proxy = "127.0.0.3"
    for _ in range(2):
        assert (await login_from(api, proxy, "viewer", "guess", forwarded_for="198.51.100.7"))[0] == 401
    assert (await login_from(api, proxy, "viewer", "guess", forwarded_for="198.51.100.7"))[0] == 429

    # Another client behind the same proxy is not limited by the first one's guesses.
    assert (await login_from(api, proxy, "viewer", VIEWER_PASSWORD, forwarded_for="198.51.100.8"))[0] == 200
    # The rightmost hop the proxy did not vouch for counts: made-up hops to its left change nothing.
    forged = await login_from(api, proxy, "viewer", "guess", forwarded_for="203.0.113.1, 198.51.100.7")
    assert forged[0] == 429
    chained = await login_from(api, proxy, "viewer", "guess", forwarded_for="198.51.100.7, 127.0.0.3")
    assert chained[0] == 429  # a second trusted proxy in the chain is passed over too

    failed = [event["client"] for event in log_events(log_output) if event["event"] == "login failed"]
    assert failed == ["198.51.100.7", "198.51.100.7"]
    audited = [event["client"] for event in log_events(log_output) if event["event"] == "request"]
    assert audited[-1] == "198.51.100.7"


# --- bad bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        pytest.param(b"username=viewer&password=x", "must be JSON", id="not-json"),
        pytest.param(b"", "JSON object", id="empty"),
        pytest.param(b'["viewer", "x"]', "JSON object", id="a-list"),
        pytest.param(b'"viewer"', "JSON object", id="a-string"),
        pytest.param(b'{"username": "viewer"}', "password", id="no-password"),
        pytest.param(b'{"password": "x"}', "username", id="no-username"),
        pytest.param(b'{"username": "viewer", "password": ""}', "password", id="empty-password"),
        pytest.param(b'{"username": "", "password": "x"}', "username", id="empty-username"),
        pytest.param(b'{"username": 7, "password": "x"}', "username", id="username-not-a-string"),
        pytest.param(b'{"username": "\\ud800", "password": "x"}', "username", id="username-lone-surrogate"),
        pytest.param(b'{"username": "viewer", "password": "x", "role": "admin"}', "role", id="extra-key"),
        pytest.param(json.dumps({"username": "u" * 129, "password": "x"}).encode(), "username", id="username-129"),
        pytest.param(json.dumps({"username": "viewer", "password": "p" * 1025}).encode(), "password", id="long-pw"),
    ],
)
async def test_a_bad_login_body_is_a_400_saying_what_is_wrong(api: Api, body: bytes, says: str) -> None:
    response = await api.client.post("/api/auth/login", data=body, headers={"Content-Type": "application/json"})

    assert response.status == 400
    answer = await response.json()
    assert answer["error"] == "bad_request"
    assert says in answer["message"]
    assert "p" * 100 not in answer["message"]  # a password is not echoed back


async def test_a_body_over_64_kib_is_a_413(api: Api) -> None:
    body = json.dumps({"username": "viewer", "password": "x" * (65 * 1024)}).encode()

    response = await api.client.post("/api/auth/login", data=body, headers={"Content-Type": "application/json"})

    assert response.status == 413
    assert (await response.json())["error"] == "payload_too_large"


async def test_a_chunked_body_over_64_kib_is_a_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"username": "viewer", "password": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    response = await api.client.post("/api/auth/login", data=chunks(), headers={"Content-Type": "application/json"})

    assert response.status == 413
    assert (await response.json())["error"] == "payload_too_large"


# --- the generated first admin -----------------------------------------------------------------


async def test_without_users_an_admin_is_made_whose_password_only_its_file_holds(
    make_api: MakeApi, log_output: io.StringIO
) -> None:
    api = await make_api(users="")
    password_file = api.context.state.config.paths.state_dir / user_sync.INITIAL_PASSWORD_FILE

    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    assert len(password) >= 16
    token = await api.login("admin", password)
    assert (await (await me(api, token)).json())["user"] == {"name": "admin", "role": "admin"}
    text = log_output.getvalue()
    assert password not in text
    assert str(password_file) in text  # the log says where to look


async def test_a_restart_without_users_keeps_the_generated_password(make_api: MakeApi) -> None:
    api = await make_api(users="")
    password_file = api.context.state.config.paths.state_dir / user_sync.INITIAL_PASSWORD_FILE
    password = password_file.read_text()

    applied = user_sync.sync_users(
        api.context.state.store, api.context.state.config, now=datetime.now(UTC), log=api.context.log
    )

    assert applied == []
    assert password_file.read_text() == password
    assert (await login(api, "admin", password.strip())).status == 200


async def logged_in_generated_admin(make_api: MakeApi) -> tuple[Api, Path, str, str]:
    """An agent with no users, so it made an admin; return it, the admin's password file, the password
    and a token of the admin logged in with it."""
    api = await make_api(users="")
    password_file = api.context.state.config.paths.state_dir / user_sync.INITIAL_PASSWORD_FILE
    password = password_file.read_text().strip()
    return api, password_file, password, await api.login("admin", password)


async def test_declared_users_replace_the_generated_admin_and_its_password_file(
    make_api: MakeApi, log_output: io.StringIO
) -> None:
    api, password_file, password, token = await logged_in_generated_admin(make_api)

    reload_users(api, user_line("viewer", "user", VIEWER_HASH))

    assert not password_file.exists()
    assert [user.name for user in stored_users.load_users(api.context.state.store.database)] == ["viewer"]
    await assert_unauthorized(await me(api, token))
    await assert_unauthorized(await login(api, "admin", password))
    assert (await login(api, "viewer", VIEWER_PASSWORD)).status == 200
    assert password not in log_output.getvalue()


async def test_a_declared_admin_takes_over_the_generated_one(make_api: MakeApi) -> None:
    api, password_file, password, token = await logged_in_generated_admin(make_api)

    reload_users(api, user_line("admin", "admin", ADMIN_HASH))

    assert not password_file.exists()
    await assert_unauthorized(await me(api, token))
    await assert_unauthorized(await login(api, "admin", password))
    assert (await login(api, "admin", ADMIN_PASSWORD)).status == 200
    (stored,) = stored_users.load_users(api.context.state.store.database)
    assert (stored.name, stored.generated) == ("admin", False)


async def test_emptying_the_users_list_brings_back_a_generated_admin(api: Api) -> None:
    token = await api.login("admin", ADMIN_PASSWORD)

    config = reload_users(api, "")

    password_file = config.paths.state_dir / user_sync.INITIAL_PASSWORD_FILE
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    await assert_unauthorized(await me(api, token))
    await assert_unauthorized(await login(api, "admin", ADMIN_PASSWORD))
    await assert_unauthorized(await login(api, "viewer", VIEWER_PASSWORD))
    assert (await login(api, "admin", password_file.read_text().strip())).status == 200


# --- the JWT secret ----------------------------------------------------------------------------


def test_a_missing_secret_file_is_made_private_with_32_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "new-folder" / "jwt.secret"

    secret = jwt_secret.load_secret(Auth(jwt_secret_file=path))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == secret and len(secret) == 32
    assert jwt_secret.load_secret(Auth(jwt_secret_file=path)) == secret  # made once, then read
    assert jwt_secret.load_secret(Auth(jwt_secret_file=tmp_path / "other.secret")) != secret


def test_a_secret_file_written_with_echo_loses_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    path.write_text("Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5\n")
    path.chmod(0o600)

    assert jwt_secret.load_secret(Auth(jwt_secret_file=path)) == b"Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"


def test_a_too_short_secret_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    path.write_bytes(b"short secret")
    path.chmod(0o600)

    with pytest.raises(SecretError) as raised:
        jwt_secret.load_secret(Auth(jwt_secret_file=path))

    assert str(path) in str(raised.value)
    assert "32" in str(raised.value)


def test_an_unreadable_secret_file_is_a_secret_error(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    path.mkdir()  # a folder where the file should be

    with pytest.raises(SecretError, match=r"jwt\.secret"):
        jwt_secret.load_secret(Auth(jwt_secret_file=path))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_secret_file_others_may_read_or_write_is_refused_naming_the_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "jwt.secret"
    path.write_bytes(b"s" * 40)
    path.chmod(mode)

    with pytest.raises(SecretError) as raised:
        jwt_secret.load_secret(Auth(jwt_secret_file=path))

    assert str(raised.value) == (
        f"jwt_secret_file {path} may be read or changed by users other than its owner (mode {mode:04o}); "
        f"anyone who reads it can sign tokens for any user: make it private: chmod 600 {path}"
    )
    assert stat.S_IMODE(path.stat().st_mode) == mode  # hb2r reports; it does not fix modes behind one's back


def test_a_secret_file_that_is_a_link_is_refused_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"s" * 40)
    target.chmod(0o600)
    path = tmp_path / "jwt.secret"
    path.symlink_to(target)

    with pytest.raises(SecretError) as raised:
        jwt_secret.load_secret(Auth(jwt_secret_file=path))

    assert str(raised.value) == (
        f"jwt_secret_file {path} is a symbolic link; hb2r does not follow links to its secrets: "
        "put the file itself there (0600)"
    )


def test_hb2r_run_with_a_world_readable_secret_file_exits_1_saying_so(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    secret = tmp_path / "state" / "jwt.secret"
    secret.parent.mkdir(mode=0o700)
    secret.write_bytes(b"s" * 40)
    secret.chmod(0o644)

    finished = hb2r("run", str(config), timeout=60)

    assert finished.returncode == 1
    assert f"make it private: chmod 600 {secret}" in finished.stderr
    assert "agent started" not in finished.stderr  # and no traceback: hb2r() checks


def test_a_configured_secret_is_used_and_no_file_is_made(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    configured = "c" * 40

    assert jwt_secret.load_secret(Auth(jwt_secret=configured, jwt_secret_file=path)) == configured.encode()
    assert not path.exists()


async def test_tokens_are_signed_with_the_secret_the_config_names(tmp_path: Path, aiohttp_client: Any) -> None:
    configured = "a-configured-jwt-secret-of-40-bytes-long!"
    config_path = write_config(tmp_path)
    config_path.write_text(config_path.read_text().replace("auth: {", f"auth: {{jwt_secret: '{configured}', ", 1))
    context = build_context(config_path)
    try:
        client = await aiohttp_client(init_app(context))
        response = await client.post("/api/auth/login", json={"username": "viewer", "password": VIEWER_PASSWORD})
        token = (await response.json())["token"]

        assert jwt.decode(token, configured.encode(), algorithms=["HS256"])["sub"] == "viewer"
        assert not (tmp_path / "state" / "jwt.secret").exists()
    finally:
        context.checker.close()
        context.state.store.database.close()


# --- bcrypt stays off the event loop -----------------------------------------------------------


async def test_health_answers_quickly_while_logins_run_bcrypt(make_api: MakeApi) -> None:
    """Cost 12 takes ~0.3 s a check: were bcrypt on the event loop, /health would wait that long each time."""
    password = "a-slow-password"
    api = await make_api(users=user_line("slow", "admin", hash_password(password, rounds=12)))
    assert (await api.client.get("/health")).status == 200  # the first answer takes a host sample

    storm = [asyncio.ensure_future(login(api, "slow", password)) for _ in range(4)]
    answers: list[float] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not all(login_task.done() for login_task in storm):
        assert time.monotonic() < deadline, "the logins did not finish"
        started = time.perf_counter()
        response = await api.client.get("/health")
        await response.read()
        answers.append(time.perf_counter() - started)
        assert response.status == 200
    results = await asyncio.gather(*storm)

    assert [result.status for result in results] == [200] * 4
    # bcrypt on the event loop would allow a handful of answers, nearly all slower than 0.2 s; on a busy
    # 2-core machine the scheduler may hold back the odd one even when bcrypt runs elsewhere.
    slow = [seconds for seconds in answers if seconds >= 0.2]
    assert len(answers) >= 10, answers
    assert len(slow) <= len(answers) // 10, answers


# --- the log -----------------------------------------------------------------------------------


async def test_a_session_leaves_no_secret_in_the_log_and_an_audit_line_per_request(
    api: Api, log_output: io.StringIO
) -> None:
    token = await api.login("viewer", VIEWER_PASSWORD)
    await me(api, token)
    await api.client.post("/api/auth/logout", headers=bearer(token))
    await login(api, "viewer", "a-wrong-password-typed")
    await me(api, token)

    text = log_output.getvalue()
    for secret in (token, VIEWER_PASSWORD, "a-wrong-password-typed", VIEWER_HASH, ADMIN_HASH, ADMIN_PASSWORD):
        assert secret not in text
    assert api.context.secret.hex() not in text
    audit = [
        (event["user"], event["method"], event["path"], event["status"])
        for event in log_events(log_output)
        if event["event"] == "request"
    ]
    assert audit == [
        (None, "POST", "/api/auth/login", 200),
        ("viewer", "GET", "/api/auth/me", 200),
        ("viewer", "POST", "/api/auth/logout", 200),
        (None, "POST", "/api/auth/login", 401),
        (None, "GET", "/api/auth/me", 401),
    ]
    for event in log_events(log_output):
        if event["event"] == "request":
            assert isinstance(event["latency_ms"], int | float) and event["latency_ms"] >= 0


async def test_a_token_in_the_query_string_stays_out_of_the_log(api: Api, log_output: io.StringIO) -> None:
    token = await api.login("viewer", VIEWER_PASSWORD)

    await api.client.get("/api/auth/me", params={"token": token})

    assert token not in log_output.getvalue()
    paths = [event["path"] for event in log_events(log_output) if event["event"] == "request"]
    assert paths[-1] == "/api/auth/me"


async def test_a_password_typed_as_the_user_name_stays_out_of_the_log(
    make_api: MakeApi, log_output: io.StringIO
) -> None:
    api = await make_api(rate="2/min")
    typed = "Tr0ub4dor&3-horse"  # someone typed their password into the name field

    assert (await login(api, typed, "anything")).status == 401
    assert (await login(api, typed, "anything")).status == 401
    assert (await login(api, typed, "anything")).status == 429
    assert (await login(api, "viewer", "a-wrong-password")).status == 401

    text = log_output.getvalue()
    for fragment in (typed, typed[:4], typed[-4:]):
        assert fragment not in text
    logged = [(event["event"], event["user"]) for event in log_events(log_output) if event["event"].startswith("login")]
    assert [event for event, _ in logged] == [
        "login failed",
        "login failed",
        "login refused: too many attempts",
        "login failed",
    ]
    shown = {user for _, user in logged[:3]}
    assert len(shown) == 1  # the same name is shown the same way each time, so attempts can be told apart
    assert shown.pop().startswith("Tr… (17 characters, #")
    assert logged[3][1] == "viewer"  # a name that is a user is shown as it is
