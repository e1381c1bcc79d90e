"""The login rate limiter (with a fake clock) and the bcrypt checker (real bcrypt)."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from agent import auth
from agent.auth import LoginBusy, PasswordChecker, RateLimiter
from agent.config.units import Rate
from agent.domain import UserRecord
from agent.passwords import check_password, hash_password

DEADLINE_SECONDS = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(count: int = 3, per_seconds: int = 60) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(Rate(count, per_seconds), clock=clock), clock


def keys(address: str, user: str) -> list[str]:
    return [f"address:{address}", f"user:{user}"]


# --- RateLimiter -------------------------------------------------------------------------------


def test_attempts_up_to_the_rate_pass_and_the_next_one_waits() -> None:
    limits, clock = limiter()
    assert [limits.attempt(keys("a", "alice")) for _ in range(3)] == [None, None, None]

    clock.now += 15
    wait = limits.attempt(keys("a", "alice"))

    assert wait == pytest.approx(45.0)


def test_a_name_is_limited_from_every_address() -> None:
    limits, _ = limiter()
    for address in ("a", "b", "c"):
        assert limits.attempt(keys(address, "alice")) is None

    assert limits.attempt(keys("d", "alice")) is not None
    assert limits.attempt(keys("d", "ALICE".casefold())) is not None
    assert limits.attempt(keys("d", "bob")) is None  # address d itself is not limited


def test_an_address_is_limited_for_every_name() -> None:
    limits, _ = limiter()
    for name in ("alice", "bob", "carol"):
        assert limits.attempt(keys("a", name)) is None

    assert limits.attempt(keys("a", "dave")) is not None
    assert limits.attempt(keys("b", "dave")) is None


def test_the_window_slides() -> None:
    limits, clock = limiter()
    for at in (0, 20, 40):
        clock.now = 1000.0 + at
        assert limits.attempt(keys("a", "alice")) is None

    clock.now = 1050.0
    assert limits.attempt(keys("a", "alice")) == pytest.approx(10.0)
    clock.now = 1060.0  # the attempt at 0 leaves the window
    assert limits.attempt(keys("a", "alice")) is None
    clock.now = 1061.0
    assert limits.attempt(keys("a", "alice")) == pytest.approx(19.0)  # the one at 20 is now the oldest


def test_refused_attempts_are_not_counted() -> None:
    limits, clock = limiter()
    for _ in range(3):
        limits.attempt(keys("a", "alice"))
    for _ in range(50):
        clock.now += 1
        assert limits.attempt(keys("a", "alice")) is not None

    clock.now = 1060.0

    assert limits.attempt(keys("a", "alice")) is None


def test_the_wait_is_at_least_a_second() -> None:
    limits, clock = limiter()
    for _ in range(3):
        limits.attempt(keys("a", "alice"))

    clock.now += 59.9

    assert limits.attempt(keys("a", "alice")) == 1.0


def test_idle_keys_are_forgotten_so_memory_stays_bounded() -> None:
    limits, clock = limiter()
    limits.MAX_KEYS = 20
    for number in range(1000):
        clock.now += 0.1
        limits.attempt(keys(f"10.0.{number // 250}.{number % 250}", f"name{number}"))
        assert len(limits._attempts) <= limits.MAX_KEYS


def test_keys_idle_for_a_window_go_first() -> None:
    limits, clock = limiter()
    limits.MAX_KEYS = 10
    limits.attempt(keys("old", "old"))
    limits.attempt(keys("old", "old"))
    clock.now += 61
    for number in range(5):
        limits.attempt(keys(f"new{number}", f"new{number}"))

    assert "address:old" not in limits._attempts
    assert all(f"user:new{number}" in limits._attempts for number in range(5))


def test_a_flood_of_new_names_does_not_lift_a_limit_in_force() -> None:
    limits, clock = limiter()
    limits.MAX_KEYS = 50
    for address in ("a", "b", "c"):
        assert limits.attempt(keys(address, "victim")) is None
    assert limits.attempt(keys("d", "victim")) is not None

    for number in range(500):  # each from a new address, each a new name: all pass
        clock.now += 0.01
        assert limits.attempt(keys(f"flood{number}", f"name{number}")) is None

    assert limits.attempt(keys("e", "victim")) is not None
    assert len(limits._attempts) <= limits.MAX_KEYS


# --- PasswordChecker ---------------------------------------------------------------------------


PASSWORD = "the-right-password"
HASH_4 = hash_password(PASSWORD, rounds=4)


@pytest.fixture
def checker() -> PasswordChecker:
    return PasswordChecker(threads=1)


async def test_the_checker_accepts_the_password_and_refuses_others(checker: PasswordChecker) -> None:
    user = UserRecord("alice", "user", HASH_4, False)
    try:
        assert await checker.check(PASSWORD, user, cost=4) is True
        assert await checker.check("wrong", user, cost=4) is False
        assert await checker.check(PASSWORD, None, cost=4) is False
        assert await checker.check("x" * 100, user, cost=4) is False  # longer than bcrypt reads
    finally:
        checker.close()


async def test_an_unknown_name_costs_what_a_wrong_password_does_even_the_first_time() -> None:
    user = UserRecord("alice", "user", hash_password(PASSWORD, rounds=10), False)
    first_unknown: list[float] = []
    wrong: list[float] = []
    for _ in range(3):
        checker = PasswordChecker(threads=1)  # a fresh one: nothing prepared yet
        try:
            started = time.perf_counter()
            assert await checker.check(PASSWORD, None, cost=10) is False
            first_unknown.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert await checker.check("wrong", user, cost=10) is False
            wrong.append(time.perf_counter() - started)
        finally:
            checker.close()

    assert 0.5 < statistics.median(first_unknown) / statistics.median(wrong) < 1.5, (first_unknown, wrong)


async def test_too_many_waiting_logins_are_turned_away(
    checker: PasswordChecker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "MAX_PENDING_LOGINS", 1)
    user = UserRecord("alice", "user", hash_password(PASSWORD, rounds=10), False)
    try:
        first = asyncio.ensure_future(checker.check(PASSWORD, user, cost=10))
        deadline = time.monotonic() + DEADLINE_SECONDS
        while checker._pending == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0)

        with pytest.raises(LoginBusy):
            await checker.check(PASSWORD, user, cost=10)

        assert await first is True
        assert await checker.check(PASSWORD, user, cost=10) is True  # room again once it is done
    finally:
        checker.close()


# --- small parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password_hash", "cost"),
    [("$2b$12$" + "a" * 53, 12), ("$2y$04$" + "a" * 53, 4), ("$2a$31$" + "a" * 53, 31), ("", 9), ("garbage", 9)],
)
def test_bcrypt_cost_reads_the_hash(password_hash: str, cost: int) -> None:
    assert auth.bcrypt_cost(password_hash, default=9) == cost


@pytest.mark.parametrize("cost", [4, 10])
def test_the_dummy_hash_has_the_cost_asked_and_matches_nothing(cost: int) -> None:
    dummy = auth._dummy_hash(cost)

    assert auth.bcrypt_cost(dummy, default=0) == cost
    assert len(dummy) == 60
    assert check_password("", dummy) is False
    assert check_password("anything", dummy) is False
    assert dummy != auth._dummy_hash(cost)


def test_a_token_carries_a_digest_of_the_hash_not_the_hash() -> None:
    digest = auth.password_digest(HASH_4)

    assert len(digest) == 16
    assert digest not in HASH_4
    assert digest == auth.password_digest(HASH_4)
    assert digest != auth.password_digest(hash_password(PASSWORD, rounds=4))  # a new salt, a new digest
