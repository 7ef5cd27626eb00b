"""Numbers and dates compared as values, the way a grader compares them.

"12,000", "12 000" and "12000" are one number; "2.5" is not "25"; "4 July 1776", "July 4, 1776"
and "1776-07-04" are one date. Dates are read from tokens (``core.scoring.text``) with a small
grammar of the common orders rather than a fuzzy parser: a fuzzy parser finds dates in ordinary
words ("May", "March" as verbs) and fills missing parts with today's, and a grader does neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Optional, Sequence

if TYPE_CHECKING:
    from .text import Token


def number_value(text: str) -> float:
    """The value of a number as written: thousands separators (comma, thin/no-break/plain space) dropped."""
    digits = text.replace(",", "").replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    return float(digits)


MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for name in names
}


class Date(NamedTuple):
    """A date as stated: any part may be missing ("1912" has only a year). ``start``/``end`` are
    token indexes, so the caller knows which words the date covers."""

    year: Optional[int]
    month: Optional[int]
    day: Optional[int]
    start: int
    end: int  # exclusive

    def parts(self) -> tuple[Optional[int], Optional[int], Optional[int]]:
        return (self.year, self.month, self.day)


def _year(t: "Token") -> Optional[int]:
    if t.number is not None and t.norm.isdigit() and 1 <= len(t.raw) <= 4 and t.number == int(t.number):
        return int(t.number)
    return None


def _day(t: "Token") -> Optional[int]:
    raw = t.norm[:-2] if t.norm.endswith("th") and t.norm[:-2].isdigit() else t.norm
    if raw.isdigit() and 1 <= int(raw) <= 31 and len(t.raw.rstrip("stndrh")) <= 2:
        return int(raw)
    return None


def _month(t: "Token", allow_lower: bool) -> Optional[int]:
    m = MONTHS.get(t.norm)
    if m is None:
        return None
    if t.norm == "may" and not t.cap and not allow_lower:
        return None  # "it may be" is not a month
    return m


def _year_at(toks: Sequence["Token"], k: int) -> Optional[int]:
    """The year at position ``k`` after a month or a day: three digits at least, so "April 15, 12"
    reads as no year rather than the year 12."""
    if k < len(toks) and len(toks[k].raw) >= 3:
        return _year(toks[k])
    return None


def dates(toks: Sequence["Token"], numeric_raw: str = "") -> list[Date]:
    """The dates stated in ``toks``: "15 April 1912", "April 15, 1912", "April 1912", "1912-04-15",
    "15/04/1912" (day first or month first: both readings are returned), and lone four-digit years."""
    out: list[Date] = []
    n = len(toks)
    i = 0
    while i < n:
        t = toks[i]
        # ISO 1912-04-15 and slashed 15/04/1912, 04/15/1912 (tokens joined by - or /)
        if i + 2 < n and all(toks[j].number is not None for j in (i, i + 1, i + 2)):
            seps = (toks[i + 1].gap.strip(), toks[i + 2].gap.strip())
            if seps in (("-", "-"), ("/", "/"), (".", ".")):
                a, b, c = (int(toks[j].number or 0) for j in (i, i + 1, i + 2))
                if len(toks[i].raw) == 4 and 1 <= b <= 12 and 1 <= c <= 31:
                    out.append(Date(a, b, c, i, i + 3))
                elif len(toks[i + 2].raw) == 4:
                    if 1 <= b <= 12 and 1 <= a <= 31:
                        out.append(Date(c, b, a, i, i + 3))
                    if 1 <= a <= 12 and 1 <= b <= 31 and a != b:
                        out.append(Date(c, a, b, i, i + 3))
                i += 3
                continue
        m = _month(t, allow_lower=False)
        if m is not None:
            # April 15, 1912 / April 15 / April 1912
            if i + 1 < n and _day(toks[i + 1]) is not None and len(toks[i + 1].raw) <= 4:
                d = _day(toks[i + 1])
                year = _year_at(toks, i + 2)
                if year is not None:
                    out.append(Date(year, m, d, i, i + 3))
                    i += 3
                    continue
                out.append(Date(None, m, d, i, i + 2))
                i += 2
                continue
            year = _year_at(toks, i + 1)
            if year is not None:
                out.append(Date(year, m, None, i, i + 2))
                i += 2
                continue
            out.append(Date(None, m, None, i, i + 1))
            i += 1
            continue
        # 15 April 1912 / 15th of April 1912 / 15 April
        if _day(t) is not None and i + 1 < n:
            k = i + 1
            if toks[k].norm == "of" and k + 1 < n:
                k += 1
            m2 = _month(toks[k], allow_lower=True)
            if m2 is not None:
                year = _year_at(toks, k + 1)
                if year is not None:
                    out.append(Date(year, m2, _day(t), i, k + 2))
                    i = k + 2
                    continue
                out.append(Date(None, m2, _day(t), i, k + 1))
                i = k + 1
                continue
        y = _year(t)
        if y is not None and len(t.raw) == 4:
            out.append(Date(y, None, None, i, i + 1))
        i += 1
    return out


def same_date(gold: Date, got: Date, year_only: bool = False) -> bool:
    """``got`` states ``gold``: every part the gold gives is given and equal (only the year when
    the question asks for a year). A less specific answer does not state the date."""
    if year_only and gold.year is not None:
        return got.year == gold.year
    for g, a in zip(gold.parts(), got.parts()):
        if g is not None and g != a:
            return False
    return True
