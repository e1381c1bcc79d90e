"""The login limits, with the clock as an argument: who is refused, for how long, and who never is."""

from __future__ import annotations

import pytest

from agent.config.units import Rate
from agent.login_limits import (
    FAILURE_MEMORY_SECONDS,
    MAX_DELAY_SECONDS,
    LoginLimits,
    RateLimiter,
    address_key,
    delay_after,
)

T0 = 1000.0


def limits(count: int = 3) -> LoginLimits:
    return LoginLimits(Rate(count, 60))


# --- per (address, name) and per address ------------------------------------------------------


def test_attempts_up_to_the_rate_pass_and_the_next_one_waits() -> None:
    login = limits()
    assert [login.admit(address="10.0.0.1", name="alice", now=T0) for _ in range(3)] == [None, None, None]

    assert login.admit(address="10.0.0.1", name="alice", now=T0 + 15) == pytest.approx(45.0)


def test_guesses_at_a_name_from_one_address_never_refuse_it_from_another() -> None:
    """The reported lock-out: bad logins for "Adm" from one address, then "adm" from another."""
    login = limits(5)
    for second in range(5):
        assert login.admit(address="10.0.0.66", name="Adm", now=T0 + second) is None
        login.failed(name="Adm", now=T0 + second)
    for minute in range(10):  # the guesser keeps at it, 5 a minute
        now = T0 + 60 * minute
        for second in range(5):
            login.admit(address="10.0.0.66", name="adm", now=now + second)
        assert login.admit(address="10.0.0.7", name="adm", now=now + 30) is None


def test_a_name_is_counted_case_insensitively_per_address() -> None:
    login = limits()
    for name in ("Alice", "ALICE", "alice"):
        assert login.admit(address="10.0.0.1", name=name, now=T0) is None

    assert login.admit(address="10.0.0.1", name="aLiCe", now=T0) is not None


def test_an_address_may_try_four_times_the_rate_across_names() -> None:
    login = limits()
    for number in range(12):
        assert login.admit(address="10.0.0.1", name=f"name{number}", now=T0) is None

    assert login.admit(address="10.0.0.1", name="dave", now=T0) is not None
    assert login.admit(address="10.0.0.2", name="dave", now=T0) is None


def test_a_refused_attempt_is_not_counted() -> None:
    login = limits()
    for _ in range(3):
        login.admit(address="10.0.0.1", name="alice", now=T0)
    for second in range(1, 50):
        assert login.admit(address="10.0.0.1", name="alice", now=T0 + second) is not None

    assert login.admit(address="10.0.0.1", name="alice", now=T0 + 60) is None


def test_the_window_slides_and_the_wait_is_at_least_a_second() -> None:
    limiter = RateLimiter(Rate(3, 60))
    for at in (0, 20, 40):
        assert limiter.attempt(["k"], now=T0 + at) is None

    assert limiter.attempt(["k"], now=T0 + 50) == pytest.approx(10.0)
    assert limiter.attempt(["k"], now=T0 + 59.95) == 1.0
    assert limiter.attempt(["k"], now=T0 + 60) is None  # the attempt at 0 left the window
    assert limiter.attempt(["k"], now=T0 + 61) == pytest.approx(19.0)


def test_ipv6_clients_are_counted_by_their_64_network() -> None:
    login = limits()
    for host in range(3):
        assert login.admit(address=f"2001:db8:1:2::{host + 1:x}", name="alice", now=T0) is None

    assert login.admit(address="2001:db8:1:2:ffff::9", name="alice", now=T0) is not None
    assert login.admit(address="2001:db8:1:3::1", name="alice", now=T0) is None


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::/64"),
        ("unknown", "unknown"),
    ],
)
def test_the_key_of_an_address(address: str, key: str) -> None:
    assert address_key(address) == key


# --- memory stays bounded ---------------------------------------------------------------------


def test_idle_keys_are_forgotten_so_memory_stays_bounded() -> None:
    limiter = RateLimiter(Rate(3, 60))
    limiter.MAX_KEYS = 20
    for number in range(1000):
        limiter.attempt([f"key{number}"], now=T0 + number / 10)
        assert len(limiter._attempts) <= limiter.MAX_KEYS


def test_a_flood_of_new_keys_does_not_lift_a_limit_in_force() -> None:
    limiter = RateLimiter(Rate(3, 60))
    limiter.MAX_KEYS = 50
    for _ in range(3):
        assert limiter.attempt(["victim"], now=T0) is None
    assert limiter.attempt(["victim"], now=T0) is not None

    for number in range(500):
        assert limiter.attempt([f"flood{number}"], now=T0 + number / 100) is None

    assert limiter.attempt(["victim"], now=T0 + 5) is not None
    assert len(limiter._attempts) <= limiter.MAX_KEYS


def test_a_flood_of_new_names_does_not_forget_the_failures_of_a_name_under_attack() -> None:
    login = limits()
    login.failures.MAX_KEYS = 50
    for second in range(3):
        login.failed(name="admin", now=T0 + second)
    for number in range(500):
        login.failed(name=f"flood{number}", now=T0 + 3 + number / 100)

    assert login.failed(name="admin", now=T0 + 10) > 0
    assert len(login.failures._failures) <= login.failures.MAX_KEYS


# --- the per-name slow-down -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(1, 0.0), (3, 0.0), (4, 1.0), (5, 2.0), (6, 4.0), (7, 8.0), (8, MAX_DELAY_SECONDS), (500, MAX_DELAY_SECONDS)],
)
def test_the_delay_grows_with_each_failure_past_the_rate_up_to_a_cap(failures: int, delay: float) -> None:
    assert delay_after(failures, free=3) == delay


def test_failures_for_a_name_from_many_addresses_are_slowed_down_together() -> None:
    login = limits()
    delays = [login.failed(name="Admin" if n % 2 else "admin", now=T0 + n) for n in range(7)]

    assert delays == [0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    assert login.failed(name="viewer", now=T0 + 8) == 0.0  # other names are not touched


def test_failures_are_forgotten_after_a_while() -> None:
    login = limits()
    for second in range(5):
        login.failed(name="admin", now=T0 + second)

    assert login.failed(name="admin", now=T0 + 4 + FAILURE_MEMORY_SECONDS + 1) == 0.0
