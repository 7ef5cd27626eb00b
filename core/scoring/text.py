"""Answer text as a grader reads it: tokens with their folded form, case and place.

A careful grader ignores case, accents, punctuation (any Unicode punctuation, not only ASCII),
hyphens against spaces, possessives, dots in initials and thousands separators, and reads numbers
as numbers. Folding is done per token rather than on the whole string, so that deleting a mark
never glues two words together ("Saint-Exupéry" is "saint exupery", not "saintexupery") and never
turns "2.5" into "25". Only the first line of an answer counts: the probe stops generation at a
newline, and anything after it is not the model's answer.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Optional

from .numbers import number_value

ARTICLES = frozenset({"a", "an", "the"})
# letters that do not decompose under NFD but that graders read as their base letter
_LETTER_FOLD = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L",
                              "đ": "d", "Đ": "D", "ı": "i", "ß": "ss", "þ": "th", "ð": "d"})  # fmt: skip
# symbols that carry a word of their own
_SYMBOL_WORDS = {"%": " percent ", "&": " and ", "+": " plus ", "°": " degrees "}
# a number: thousands groups (comma, thin or no-break space, or a plain space after 1-3 digits), decimals
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d{1,3}(?:[\u00a0\u202f ]\d{3})+(?![\d,.]\d)|\d+(?:\.\d+)?"
# a word: letters (and digits after a letter: "B52"), with inner apostrophes ("don't", "O'Brien", "Lisbon's")
_WORD = r"[^\W\d_][^\W_]*(?:['’][^\W\d_]+)*"
_TOKEN = re.compile(rf"(?P<num>{_NUMBER})(?P<ord>st|nd|rd|th)?\b|(?P<word>{_WORD})")


def fold_word(word: str) -> str:
    """Case, accents and apostrophes folded: "Exupéry" -> "exupery", "O'Brien" -> "obrien"."""
    word = unicodedata.normalize("NFD", word.translate(_LETTER_FOLD))
    word = "".join(ch for ch in word if not unicodedata.combining(ch)).casefold()
    return word.replace("'", "").replace("’", "")


@dataclass(frozen=True)
class Token:
    """One word or number of an answer. ``norm`` is what compares; ``cap`` whether it was written
    with a capital; ``gap`` the text between it and the previous token (punctuation lives there)."""

    norm: str
    raw: str
    cap: bool
    start: int
    end: int
    gap: str
    number: Optional[float] = None  # the value of a number token
    neg: bool = False  # a contraction with n't ("isn't", "don't")
    # first word of the text or of a sentence: its capital says nothing about a name
    sentence_start: bool = False
    poss: bool = False  # written with a possessive 's ("McDonald's" also reads as "McDonalds")

    @property
    def joined(self) -> bool:
        """Nothing but spaces (or a hyphen) between this token and the previous one."""
        return self.gap.strip() in ("", "-", "‐", "‑")


def first_line(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").split("\n", 1)[0]


def tokens(text: str) -> list[Token]:
    """The tokens of ``text``'s first line, folded; initials merged ("J. R. R." -> "jrr")."""
    line = first_line(text)
    for sym, word in _SYMBOL_WORDS.items():
        if sym in line:
            line = line.replace(sym, word)
    out: list[Token] = []
    prev_end = 0
    for m in _TOKEN.finditer(line):
        raw = m.group(0)
        gap = line[prev_end : m.start()]
        prev_end = m.end()
        # a sentence starts the text, or follows ! ? : ; or a full stop after a word (not an initial)
        first = (
            not out or bool(re.search(r"[!?:;¡¿]", gap)) or ("." in gap and len(out[-1].raw) > 1 and not out[-1].raw.isupper())
        )
        if m.group("num") is not None:
            value = number_value(m.group("num"))
            if m.group("ord"):
                out.append(Token(f"{_fmt(value)}th", raw, False, m.start(), m.end(), gap, sentence_start=first))
            else:
                out.append(Token(_fmt(value), raw, False, m.start(), m.end(), gap, number=value, sentence_start=first))
            continue
        word = raw
        neg = poss = False
        low = word.casefold().replace("’", "'")
        if low.endswith("n't") and len(low) > 3:
            neg = True
        elif len(word) > 2 and low.endswith("'s"):
            word, poss = word[:-2], True  # possessive, or "it's"/"that's": the bare word either way
        norm = fold_word(word)
        ordinal = _ORDINAL_WORDS.get(norm)
        number = None
        if ordinal is not None:
            norm = f"{ordinal}th"
        elif norm in _NUMBER_WORDS:
            number = float(_NUMBER_WORDS[norm])
            norm = _fmt(number)
        out.append(Token(norm, raw, raw[:1].isupper(), m.start(), m.end(), gap, number, neg, first, poss))
    return _merge_initials(_merge_number_words(out))


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90})
_MULTIPLIERS = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000, "trillion": 10**12}
_ORDINAL_WORDS = {
    w: i + 1 for i, w in enumerate("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split())
}


def _merge_number_words(toks: list[Token]) -> list[Token]:
    """ "1.5 million" -> 1500000, "twenty five" -> 25, "twelve thousand" -> 12000, "a hundred" stays words."""
    out: list[Token] = []
    for t in toks:
        prev = out[-1] if out else None
        if prev is not None and prev.number is not None and t.joined:
            mult = _MULTIPLIERS.get(t.norm)
            if mult is not None:
                value = prev.number * mult
                out[-1] = Token(
                    _fmt(value), f"{prev.raw} {t.raw}", prev.cap, prev.start, t.end, prev.gap, value, False, prev.sentence_start
                )
                continue
            if t.number is not None and 20 <= prev.number < 100 and prev.number % 10 == 0 and t.number < 10 and t.norm.isdigit():
                if t.raw[:1].isalpha():  # "twenty five"
                    value = prev.number + t.number
                    out[-1] = Token(
                        _fmt(value),
                        f"{prev.raw} {t.raw}",
                        prev.cap,
                        prev.start,
                        t.end,
                        prev.gap,
                        value,
                        False,
                        prev.sentence_start,
                    )
                    continue
        out.append(t)
    return out


def _merge_initials(toks: list[Token]) -> list[Token]:
    """Runs of single capital letters (with or without dots: "J. R. R.", "U.S.") become one token,
    so "JRR Tolkien" and "J. R. R. Tolkien" read the same. A lone lower-case "a" is never merged."""
    out: list[Token] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if len(t.norm) == 1 and t.norm.isalpha() and t.raw.isupper():
            j = i + 1
            while j < len(toks) and len(toks[j].norm) == 1 and toks[j].raw.isupper() and toks[j].gap.strip() in ("", ".", "-"):
                j += 1
            if j - i >= 2:
                run = toks[i:j]
                merged = "".join(r.norm for r in run)
                out.append(
                    Token(merged, "".join(r.raw for r in run), True, t.start, run[-1].end, t.gap, sentence_start=t.sentence_start)
                )
                i = j
                continue
        out.append(t)
        i += 1
    return out


def words(text: str) -> list[str]:
    return [t.norm for t in tokens(text)]


def strip_articles(ws: list[str]) -> list[str]:
    """Leading articles off, never emptying: "The Doors" -> doors; the band "The The" keeps both."""
    if all(w in ARTICLES for w in ws):
        return ws
    i = 0
    while i < len(ws) - 1 and ws[i] in ARTICLES:
        i += 1
    return ws[i:]


def normalize_answer(text: str) -> str:
    """The folded form exact match compares: first line, case, accents, Unicode punctuation,
    hyphens, possessives, initials and number formats folded, leading articles dropped."""
    return " ".join(strip_articles(words(text)))
