"""The bcrypt checker (real bcrypt), bcrypt costs and token digests."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.auth import bcrypt_pool, tokens
from agent.auth.bcrypt_pool import LoginBusy, PasswordChecker
from agent.domain import UserRecord
from agent.passwords import check_password, hash_password

DEADLINE_SECONDS = 30.0


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
    for _ in range(5):
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

    # The fastest of each: on a loaded machine a slow sample says how busy it was, not what a check costs.
    # Without the dummy check an unknown name answers in microseconds: a ratio near 0.
    assert 0.5 < min(first_unknown) / min(wrong) < 2, (first_unknown, wrong)


async def test_too_many_waiting_logins_are_turned_away(
    checker: PasswordChecker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bcrypt_pool, "MAX_PENDING_LOGINS", 1)
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
    assert bcrypt_pool.bcrypt_cost(password_hash, default=9) == cost


@pytest.mark.parametrize("cost", [4, 10])
def test_the_dummy_hash_has_the_cost_asked_and_matches_nothing(cost: int) -> None:
    dummy = bcrypt_pool._dummy_hash(cost)

    assert bcrypt_pool.bcrypt_cost(dummy, default=0) == cost
    assert len(dummy) == 60
    assert check_password("", dummy) is False
    assert check_password("anything", dummy) is False
    assert dummy != bcrypt_pool._dummy_hash(cost)


def test_a_token_carries_a_digest_of_the_hash_not_the_hash() -> None:
    digest = tokens.password_digest(HASH_4)

    assert len(digest) == 16
    assert digest not in HASH_4
    assert digest == tokens.password_digest(HASH_4)
    assert digest != tokens.password_digest(hash_password(PASSWORD, rounds=4))  # a new salt, a new digest
