"""How a name typed at a failed login is logged: users as they are, anything else cut and tagged."""

from __future__ import annotations

import pytest

from agent.login_names import logged_name

KEY = b"k" * 32


def test_a_users_name_is_logged_as_it_is() -> None:
    assert logged_name("admin", is_user=True, key=KEY) == "admin"


@pytest.mark.parametrize(
    ("typed", "head"),
    [("abc", ""), ("abcd", "a"), ("abcdefg", "a"), ("abcdefgh", "ab"), ("correct horse battery staple", "co")],
)
def test_other_names_show_at_most_a_quarter_and_two_characters(typed: str, head: str) -> None:
    shown = logged_name(typed, is_user=False, key=KEY)

    assert shown.startswith(f"{head}… ({len(typed)} characters, #")
    assert typed not in shown


def test_the_same_name_gets_the_same_tag_and_another_key_another() -> None:
    first = logged_name("hunter2-password", is_user=False, key=KEY)

    assert logged_name("hunter2-password", is_user=False, key=KEY) == first
    assert logged_name("hunter2-passwore", is_user=False, key=KEY) != first
    assert logged_name("hunter2-password", is_user=False, key=b"o" * 32) != first


def test_control_characters_are_not_written_to_the_log() -> None:
    assert logged_name("\x1b[31mred-name", is_user=False, key=KEY).startswith("?[… (")
