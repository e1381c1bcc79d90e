"""Names from the disk, shown on a terminal: on one line, inert, and still readable.

A file name may hold any character but "/" and NUL. Printed as it is, a newline splits one
line of `hb2r plan` or `hb2r jobs` in two (and lets a name forge a line of its own), an
escape sequence recolours, retitles or clears the operator's terminal, and a bidi override
shows the characters of a name in another order than they are (`evil\u202egnp.mkv` reads
as `evilvkm.png`). So text output shows such a name quoted, with those characters escaped;
an ordinary name (spaces, accents, other scripts) is shown as it is. JSON output needs none
of this: the JSON encoder escapes control characters itself and names stay exact.

The rules, as `ls` and Python's `repr` suggest:
- A name is shown unquoted unless it holds a character Python calls not printable (control
  and format characters such as bidi overrides and zero-width marks, line and paragraph
  separators, spaces other than " ", surrogates from undecodable bytes, unassigned code
  points), or begins with a double quote, or begins or ends with a space.
- A quoted name stands in double quotes; inside, each such character is written as Python
  writes it (`\\n`, `\\t`, `\\x1b`, `\\u202e`), and a backslash or double quote is escaped
  with a backslash, so a quoted name is never mistaken for an unquoted one.
- A message (an error, a reason) is not a name: its unprintable characters are escaped the
  same way, without quotes.
"""

from __future__ import annotations


def shown(name: str) -> str:
    """Given a file name or path, return it fit for one line of a terminal (see the module docstring)."""
    if name.isprintable() and name[:1] not in _QUOTED_START and name[-1:] != " ":
        return name
    return '"' + "".join(_escaped_in_quotes(char) for char in name) + '"'


def escaped(text: str) -> str:
    """Given a message, return it with its unprintable characters (newlines too) escaped, on one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def first_line(text: str | None) -> str:
    """Return the first line of a message, escaped ("" for none)."""
    lines = (text or "").strip().splitlines()
    return escaped(lines[0]) if lines else ""


_QUOTED_START = ('"', " ")


def _escaped_in_quotes(char: str) -> str:
    if char == "\\" or char == '"':
        return "\\" + char
    return char if char.isprintable() else _escape(char)


def _escape(char: str) -> str:
    # repr() of a single unprintable character is its escape in quotes: '\n', '\x1b', '\u202e'.
    return repr(char)[1:-1]
