"""The one wording of a size for people: `3.2 GiB`, as the gate's reasons, the daily summary and
`hb2r backup` print it.

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
