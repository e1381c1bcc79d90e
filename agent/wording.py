"""How hb2r words numbers for people: a size (`3.2 GiB`) and a count (`3 jobs`, `1 ledger entry`),
the same in the gate's reasons, the daily summary, `hb2r backup` and every command's output.

Binary units (what `df -h` and the config's `5GiB` mean), three significant figures at most with
trailing zeros dropped, so a reason reads "5 GiB" rather than "5.00 GiB". Two other forms exist on
purpose: the config's exact form that parses back (agent.config.units.format_size, `5GiB`) and the
status page's in the browser (bytes() in agent/static/app.js), in the same units.
"""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def human_size(value: int | float) -> str:
    """Given bytes, return e.g. `3.2 GiB`, `123 MiB` or `512 B`."""
    scaled, unit = float(value), "B"
    for next_unit in _UNITS:
        if abs(scaled) < 1024:
            break
        scaled, unit = scaled / 1024, next_unit
    if unit == "B":
        return f"{int(scaled)} B"
    digits = 0 if abs(scaled) >= 100 else 1 if abs(scaled) >= 10 else 2
    text = f"{scaled:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").removesuffix(".")
    return f"{text} {unit}"


def counted(number: int, one: str, many: str | None = None) -> str:
    """Given a count and its noun, return e.g. `1 job`, `3 jobs` or `2 ledger entries` (many, where
    the plural is not one + "s")."""
    return f"{number} {one if number == 1 else (many or one + 's')}"
