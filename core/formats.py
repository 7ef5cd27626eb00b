"""How numbers are written for people: durations, percentages and sizes.

One home, so the terminal, the app and the report write "2m05s", "12.5%" and "1.4 GiB" the same
way, and a change of format is made once. Plain functions without imports beyond the standard
library, so any layer (the CLI, a Qt page, the report) can use them.
"""

from __future__ import annotations

import math
from typing import Any, Optional

KIB, MIB, GIB = 1024, 1024**2, 1024**3


# --------------------------------------------------------------------------- durations


def format_duration(s: Optional[float], sep: str = "") -> str:
    """Seconds as "2m05s" / "1h03m" ("2m 05s" with ``sep=" "``, the app's); "--:--" while unknown."""
    if s is None:
        return "--:--"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{sep}{m:02d}m" if h else f"{m}m{sep}{sec:02d}s"


def duration_words(s: Any) -> str:
    """Seconds in words for a reader ("3 min 05 s"), not the terminal's compact "3m05s"; "-" when
    missing or not a number (the report shows stored values, which may be either)."""
    if s is None:
        return "-"
    try:
        s = int(round(float(s)))
    except (TypeError, ValueError, OverflowError):
        return "-"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {sec:02d} s"
    return f"{sec} s"


# --------------------------------------------------------------------------- shares


def percent(x: Any, digits: int = 1, missing: str = "-") -> str:
    """A share (0..1) as a percentage, "12.5%"; ``missing`` when it is None or not a finite number
    (an evaluation not run yet, an empty category)."""
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return missing
    return f"{100 * x:.{digits}f}%"


# --------------------------------------------------------------------------- sizes


def format_gib(n: float, digits: int = 1) -> str:
    """Bytes in GiB, "15.6 GiB" (memory sizes: RAM, a GPU, what a model needs)."""
    return f"{n / GIB:.{digits}f} GiB"


def format_mib(n: float) -> str:
    """Bytes in whole MiB with thousands separators, "1,024 MiB" (file sizes)."""
    return f"{n / MIB:,.0f} MiB"


def format_bytes(n: Optional[float], *, gib_from: float = GIB) -> str:
    """Bytes in the largest unit that reads well: GiB (one decimal) from ``gib_from`` up, else MiB,
    else KiB; "unknown" for None. ``gib_from=GIB / 10`` writes 0.5 GiB rather than 512 MiB, for
    estimates that are compared with gigabytes of free memory."""
    if n is None:
        return "unknown"
    if n >= gib_from:
        return format_gib(n)
    if n >= MIB:
        return f"{n / MIB:.0f} MiB"
    return f"{n / KIB:.0f} KiB"


__all__ = ["KIB", "MIB", "GIB", "format_duration", "duration_words", "percent", "format_gib", "format_mib", "format_bytes"]
