"""How a name from the disk appears on an operator's terminal: one line, inert, readable."""

from __future__ import annotations

import pytest

from agent.quoting import escaped, shown


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("Show/S01E01.mkv", "Show/S01E01.mkv", id="an-ordinary-path-is-shown-as-it-is"),
        pytest.param("Film (2020) – Director's Cut.mkv", "Film (2020) – Director's Cut.mkv", id="punctuation-as-is"),
        pytest.param("Amélie/東京 物語.mkv", "Amélie/東京 物語.mkv", id="accents-and-other-scripts-as-they-are"),
        pytest.param("two  spaces.mkv", "two  spaces.mkv", id="inner-spaces-as-they-are"),
        pytest.param("back\\slash.mkv", "back\\slash.mkv", id="a-backslash-alone-needs-no-quotes"),
        pytest.param("a\nb.mkv", '"a\\nb.mkv"', id="a-newline-is-escaped-and-the-name-quoted"),
        pytest.param("\x1b[31mred.mkv", '"\\x1b[31mred.mkv"', id="an-escape-sequence-is-made-inert"),
        pytest.param("bell\x07\x7f.mkv", '"bell\\x07\\x7f.mkv"', id="other-control-characters-too"),
        pytest.param("evil\u202egnp.mkv", '"evil\\u202egnp.mkv"', id="a-bidi-override-cannot-reorder-the-name"),
        pytest.param("x\u2066y\u2069.mkv", '"x\\u2066y\\u2069.mkv"', id="bidi-isolates-too"),
        pytest.param("zero\u200bwidth.mkv", '"zero\\u200bwidth.mkv"', id="an-invisible-character-is-shown"),
        pytest.param("nb\u00a0space.mkv", '"nb\\xa0space.mkv"', id="a-space-that-is-not-a-space-is-shown"),
        pytest.param("line\u2028sep.mkv", '"line\\u2028sep.mkv"', id="a-unicode-line-separator-too"),
        pytest.param("bad\udcff.mkv", '"bad\\udcff.mkv"', id="an-undecodable-byte-cannot-crash-the-output"),
        pytest.param(' lead.mkv', '" lead.mkv"', id="a-leading-space-is-made-visible"),
        pytest.param('trail.mkv ', '"trail.mkv "', id="a-trailing-space-is-made-visible"),
        pytest.param('"quoted".mkv', '"\\"quoted\\".mkv"', id="a-name-that-starts-with-a-quote-is-quoted"),
        pytest.param(
            'a\n"b\\c', '"a\\n\\"b\\\\c"', id="inside-quotes-backslash-and-quote-are-escaped-so-it-reads-back-exactly"
        ),
    ],
)
def test_a_name_is_shown_on_one_line_as_it_is_or_quoted(name: str, expected: str) -> None:
    assert shown(name) == expected


@pytest.mark.parametrize(
    "name",
    ["a\nb", "\x1b[2J", "x\u202ey", '"a"', ' a', "bad\udcff", "\t\r\x00", 'q\n"\\'],
)
def test_a_quoted_name_reads_back_as_the_exact_name(name: str) -> None:
    import ast

    text = shown(name)
    assert text.startswith('"') and text.endswith('"')
    assert ast.literal_eval(text) == name  # the same escapes as a Python string literal


def test_a_message_is_escaped_without_quotes() -> None:
    assert escaped("HandBrakeCLI exited with 3") == "HandBrakeCLI exited with 3"
    assert escaped("cannot open \x1b[2Ja\nb") == "cannot open \\x1b[2Ja\\nb"
