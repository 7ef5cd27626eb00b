"""The grading rules: is this answer right, and why.

Two modes, after the published grading guides of short-answer QA (SimpleQA's rubric, the trivia
adjudication rules that PEDANTS/CFMatch formalise):

* ``exact`` (the paper's): the whole answer, folded (``core.scoring.text``), equals a gold alias;
  numbers, dates and the parts of a conjunction compare as values, in any order.
* ``key``: the answer states an answer key and does not take it back. A key counts where it
  stands on its own: not negated ("Not Paris, it is Lyon."), not one of several candidates
  ("Either Lyon or Paris."), not inside a different, longer name ("West Virginia" for "Virginia"),
  not the same words in another sense ("Open the doors." for the band The Doors), not a mere
  repeat of the question. An answer that hedges ("maybe", "I think", "not sure") is not knowledge.

Every verdict carries its reason, and says whether the rules decided it: a judge model is asked
only about answers the rules cannot decide (a wrong answer with no trace of the key may still be
a paraphrase the rules do not know).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from .names import is_acronym, other_names
from .numbers import Date, dates, same_date
from .senses import WORK_NOUNS, common_word_misuse, other_answer
from .text import ARTICLES, Token, tokens
from .words import (
    CLAUSE_BREAKS,
    CLAUSE_WORDS,
    COPULAS,
    HEDGE_PHRASES,
    HEDGE_WORDS,
    NEGATING_PAIRS,
    NEGATING_SINGLE,
    NEGATORS,
    PLACE_TITLES,
    QUALIFIERS,
    REFUSALS,
    STOP,
    TITLES,
    UNITS,
)

NEGATION_REACH = 5  # words a "not" reaches forward within its clause
FILLERS = frozenset("about approximately roughly around circa nearly some".split())  # "About 384,400 km"
# words that join the capitalised words of one title or name: "Up in the Air", "Isle of Man"
NAME_JOINERS = frozenset("of the in on at de la le du da del di van von der and upon".split())


@dataclass(frozen=True)
class Verdict:
    """Right or wrong, why (shown beside each answer), and whether the rules decided it."""

    right: bool
    reason: str
    decided: bool = True

    def __bool__(self) -> bool:
        return self.right


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return f"'{text[:60]}…'" if len(text) > 60 else f"'{text}'"


@dataclass
class _Key:
    """One gold key, read once: its tokens (leading articles off), its conjunction parts, its
    number or date, and which of its words must keep their capital (names made of common words)."""

    text: str
    toks: list[Token]
    parts: list[list[Token]] = field(default_factory=list)
    number: Optional[float] = None
    unit: Optional[str] = None
    date: Optional[Date] = None
    need_cap: frozenset[int] = frozenset()
    upper_only: bool = False  # another name in capitals ("US"): "us" in an answer is the pronoun

    @classmethod
    def of(cls, text: str) -> Optional["_Key"]:
        toks = tokens(text)
        if not toks:
            return None
        lead = 0
        if not all(t.norm in ARTICLES for t in toks):  # the band "The The" keeps both words
            while lead < len(toks) - 1 and (toks[lead].norm in ARTICLES or toks[lead].norm in FILLERS):
                lead += 1
        body = toks[lead:]
        # words that must keep their capital: capitalised in the gold after its first word, or a
        # function word ("The Who", "Take That", "The Doors"): in lower case they are other words
        need = frozenset(
            i - lead
            for i, t in enumerate(toks)
            if i >= lead and t.cap and t.number is None and (i > 0 or t.norm in STOP) and not t.raw.isupper()
        )
        key = cls(text, body, need_cap=need)
        if len(body) <= 3 and body[0].number is not None and all(t.norm in UNITS for t in body[1:]):
            key.number = body[0].number
            key.unit = UNITS.get(body[1].norm) if len(body) >= 2 else None
        found = dates(body)
        if found and found[0].start == 0 and found[0].end == len(body) and (found[0].month or len(body) == 1):
            key.date = found[0]
        parts = _conjunction_parts(body)
        if len(parts) > 1:
            key.parts = parts
        return key


def _conjunction_parts(toks: list[Token]) -> list[list[Token]]:
    """ "Larry Page and Sergey Brin" -> [[larry, page], [sergey, brin]]; also "A, B and C", "A & B"."""
    parts: list[list[Token]] = [[]]
    for t in toks:
        if t.norm == "and" or (parts[-1] and t.gap.strip() in (",", ";", "/")):
            if t.norm == "and":
                parts.append([])
                continue
            parts.append([t])
            continue
        parts[-1].append(t)
    parts = [strip_tok_articles(p) for p in parts if p]
    return parts if len(parts) > 1 and all(parts) else []


def strip_tok_articles(toks: list[Token]) -> list[Token]:
    """Leading articles off; a name made only of articles (the band "The The") keeps them all."""
    if all(t.norm in ARTICLES for t in toks):
        return toks
    i = 0
    while i < len(toks) - 1 and toks[i].norm in ARTICLES:
        i += 1
    return toks[i:]


def _norms(toks: Sequence[Token]) -> list[str]:
    return [t.norm for t in toks]


def _has_phrase(norms: Sequence[str], phrases: Iterable[tuple[str, ...]]) -> Optional[str]:
    for p in phrases:
        n = len(p)
        for i in range(len(norms) - n + 1):
            if tuple(norms[i : i + n]) == p:
                return " ".join(p)
    return None


def _clause_break(t: Token) -> bool:
    """A mark between ``t`` and the word before it that ends a clause."""
    return any(ch in CLAUSE_BREAKS for ch in t.gap) or t.norm in CLAUSE_WORDS


_PERSON_NOUNS = frozenset(
    "people person men women man woman scientists scientist brothers author writer painter composer singer "
    "actor actress director player king queen president poet novelist inventor founder founders".split()
)


class Question:
    """What the question tells the grader: its words, and the kind of answer it asks for."""

    def __init__(self, text: str) -> None:
        self.toks = tokens(text)
        self.norms = _norms(self.toks)
        self.words = frozenset(self.norms)
        head = " ".join(self.norms[:4])
        if "year" in self.norms[:4] or head.startswith(("when was", "when did")) and "date" not in self.norms:
            self.kind = "year" if "year" in self.norms[:4] else "date"
        elif self.norms[:1] == ["when"] or "date" in self.norms[:4]:
            self.kind = "date"
        elif head.startswith(("how many", "how much", "how tall", "how long", "how high", "how far", "how old", "how big")):
            self.kind = "number"
        else:
            self.kind = ""
        self.person = bool({"who", "whom", "whose"} & self.words) or bool(_PERSON_NOUNS & set(self.norms[:4]))
        self.work = bool(WORK_NOUNS & self.words)  # asks for the name of a band, a film, a book...


class Scorer:
    """One question's grader. ``mode`` is "exact" or "key" (see the module docstring)."""

    def __init__(self, mode: str, keys: Iterable[str], question: str = "") -> None:
        self.mode = mode
        self.question = Question(question)
        golds = [str(t) for t in dict.fromkeys(keys)]
        self.keys = [k for k in map(_Key.of, golds) if k is not None]
        for name in other_names(golds):  # "USA" for "United States of America" (core/scoring/names.py)
            key = _Key.of(name)
            if key is not None:
                key.upper_only = is_acronym(name)
                self.keys.append(key)
        self._cache: dict[str, Verdict] = {}

    def __call__(self, answer: str) -> Verdict:
        got = self._cache.get(answer)
        if got is None:
            got = self._exact(answer) if self.mode == "exact" else self._key(answer)
            if len(self._cache) < 4096:
                self._cache[answer] = got
        return got

    def right(self, answer: str) -> bool:
        return self(answer).right

    # -- exact ----------------------------------------------------------------------------------

    def _exact(self, answer: str) -> Verdict:
        a = strip_tok_articles(tokens(answer))
        if not a:
            return Verdict(False, "empty answer")
        an = _norms(a)
        for key in self.keys:
            if key.upper_only and not all(t.raw.isupper() for t in a):
                continue
            kn = _norms(key.toks)
            if an == kn:
                return Verdict(True, f"matches {_quote(key.text)}")
            if key.parts:
                got = _conjunction_parts(a)
                if got and sorted(map(tuple, map(_norms, got))) == sorted(map(tuple, map(_norms, key.parts))):
                    return Verdict(True, f"matches {_quote(key.text)} (in another order)")
            if key.number is not None and a[0].number == key.number:
                rest = [t.norm for t in a[1:]]
                if not rest or (len(rest) == 1 and UNITS.get(rest[0]) == key.unit and key.unit is not None):
                    return Verdict(True, f"the number {_quote(key.text)}")
                if key.unit is not None and len(rest) == 0:
                    return Verdict(True, f"the number {_quote(key.text)}")
            if key.date is not None:
                found = dates(a)
                if found and found[0].start == 0 and found[0].end == len(a) and same_date(key.date, found[0]):
                    return Verdict(True, f"the date {_quote(key.text)}")
        what = " / ".join(_quote(k.text) for k in self.keys[:3])
        return Verdict(False, f"not {what}" if what else "no gold answer")

    # -- key ------------------------------------------------------------------------------------

    def _key(self, answer: str) -> Verdict:
        a = tokens(answer)
        if not a:
            return Verdict(False, "empty answer")
        norms = _norms(a)
        mixed = any(t.cap and not t.sentence_start for t in a)
        findings: dict[str, tuple[_Key, str]] = {}
        refusal = _has_phrase(norms, REFUSALS)
        for key in self.keys:
            for span in self._spans(key, a):
                why = self._spoiled(key, a, span, mixed, answer)
                if not why:
                    # a hedge or a refusal outside the key ("Maybe I'm Amazed" and the song "I Don't
                    # Know" are names, not doubts)
                    rest = norms[: span[0]] + ["|"] + norms[span[1] :]
                    refusal = _has_phrase(rest, REFUSALS)
                    hedge = next((n for n in rest if n in HEDGE_WORDS), None) or _has_phrase(rest, HEDGE_PHRASES)
                    if not hedge and len(a) <= 4 and answer.split("\n", 1)[0].rstrip().endswith("?"):
                        hedge = "a question mark"
                    if refusal:
                        return Verdict(False, f"says it does not know ({refusal!r}) beside {_quote(key.text)}")
                    if hedge:
                        return Verdict(False, f"hedged ({hedge!r})")
                    if self._candidates(a, span, norms):
                        return Verdict(False, f"hedges between {_quote(key.text)} and another candidate")
                    other = None
                    if key.number is None and key.date is None:
                        other = other_answer(a, span, _norms(key.toks), self.question.words)
                    if other:
                        return Verdict(False, f"gives {_quote(other)} as the answer; {_quote(key.text)} only beside it")
                    return Verdict(True, f"key {_quote(key.text)} stated")
                findings.setdefault(why, (key, _span_text(answer, a, span)))
        for why in ("negated", "longer", "sense", "possessive", "question"):
            if why in findings:
                key, seen = findings[why]
                if why == "negated":
                    return Verdict(False, f"key {_quote(key.text)} negated")
                if why == "longer":
                    return Verdict(False, f"{_quote(key.text)} only inside a longer name ({_quote(seen)})")
                if why == "sense":
                    return Verdict(False, f"{_quote(seen)} is not the name {_quote(key.text)}")
                if why == "possessive":
                    return Verdict(False, f"{_quote(key.text)} only as a possessive ({_quote(seen)})")
                return Verdict(False, f"{_quote(key.text)} only repeats the question", decided=False)
        if refusal:
            return Verdict(False, f"says it does not know ({refusal!r})")
        wrong_value = self._other_value(a)
        if wrong_value:
            return Verdict(False, wrong_value)
        what = " / ".join(_quote(k.text) for k in self.keys[:3])
        return Verdict(False, f"no key {what} in the answer", decided=False)

    def _spans(self, key: _Key, a: list[Token]) -> list[tuple[int, int]]:
        """Where ``key`` stands in the answer, as token ranges (a conjunction: its parts' hull)."""
        out: list[tuple[int, int]] = []
        if key.date is not None:
            year_only = self.question.kind == "year"
            out += [(d.start, d.end) for d in dates(a) if same_date(key.date, d, year_only)]
            if out or key.date.month is not None:
                return out
        if key.number is not None:
            for i, t in enumerate(a):
                if t.number is not None and t.number == key.number:
                    nxt = a[i + 1].norm if i + 1 < len(a) else ""
                    unit = UNITS.get(nxt)
                    if unit is not None and key.unit is not None and unit != key.unit and nxt not in ("per",):
                        continue  # "1000 feet" for "1,000 metres"
                    out.append((i, i + 1))
            return out
        if key.parts:
            parts = key.parts
            last = parts[-1]
            if self.question.person and len(last) >= 2 and last[-1].cap:  # "Orville and Wilbur Wright"
                parts = [p + [last[-1]] if len(p) == 1 and p[0].cap else p for p in parts]
            hits = [_find(p, a) or self._by_surname(p, a) for p in parts]
            if all(hits):
                starts = [h[0][0] for h in hits]
                ends = [h[0][1] for h in hits]
                return [(min(starts), max(ends))]
        out += _find(key.toks, a)
        if not out and self.question.person:
            out += self._by_surname(key.toks, a)
        if not out:  # words the question already names may be left out: "A" for "Vitamin A"
            rest = [t for t in key.toks if t.norm not in self.question.words]
            if rest and len(rest) < len(key.toks) and rest == key.toks[len(key.toks) - len(rest) :]:
                out += _find(rest, a)
        return out

    def _by_surname(self, name: list[Token], a: list[Token]) -> list[tuple[int, int]]:
        """A person named by the end of their name: "Tolkien" for "J. R. R. Tolkien",
        "Saint-Exupery" for "Antoine de Saint-Exupéry" (a given name is not enough)."""
        for start in range(1, len(name)):
            if name[start].cap and name[start].norm not in NAME_JOINERS:
                found = _find(name[start:], a)
                if found:
                    return found
        return []

    def _spoiled(self, key: _Key, a: list[Token], span: tuple[int, int], mixed: bool, answer: str) -> str:
        """Why this occurrence does not state the key ("" = it does)."""
        i, j = span
        if key.upper_only and not all(a[k].raw.isupper() for k in range(i, j)):
            return "sense"  # "tell us" is not the US
        if _negated(a, i, j):
            return "negated"
        if key.number is None and key.date is None:
            whole = i == 0 and j == len(a) or (i == 1 and j == len(a) and a[0].norm in ARTICLES)
            if not whole and self._longer_name(a, i, j, mixed, key):
                return "longer"
            # a name of common words written in lower case is those words: "Open the doors."
            cased = any(ch.isupper() for ch in answer.split("\n", 1)[0])
            if cased and not whole and not key.parts and key.need_cap and len(key.toks) == j - i:
                if any(k < j - i and not a[i + k].cap for k in key.need_cap):
                    return "sense"
            if not whole and common_word_misuse(a, i, j, _norms(key.toks), self.question.words, self.question.work):
                return "sense"
            if self._repeats_question(a, i, j):
                return "question"
            if a[j - 1].poss and j < len(a) and a[j].joined and a[j].norm not in STOP and a[j].number is None:
                return "possessive"  # "Shakespeare's contemporary Marlowe" names Marlowe
        return ""

    def _longer_name(self, a: list[Token], i: int, j: int, mixed: bool, key: _Key) -> bool:
        """The occurrence is part of a different name: "West Virginia", "Paris Hilton", "Martin
        Luther King Jr.", "Hepatitis A", "Up in the Air". A title before it ("President George
        Washington"), a qualifier after it ("New York City") or a word of the question is not."""

        def name_part(t: Token, allowed: frozenset[str]) -> bool:
            if t.number is not None or t.norm in allowed or t.norm in self.question.words:
                return False
            if t.norm in STOP or t.norm in ARTICLES or t.norm in HEDGE_WORDS or t.norm in FILLERS:
                return False
            if mixed:
                return t.cap and not (t.sentence_start and t.norm in STOP)
            return True

        # "Mount McKinley" is not the president McKinley
        titles = TITLES - PLACE_TITLES if self.question.person else TITLES
        initials = i > 0 and a[i - 1].raw.replace(".", "").isupper() and a[i].gap.strip() == "."  # "T. H. White"
        if i > 0 and (a[i].joined or initials) and name_part(a[i - 1], titles):
            return True
        if j < len(a) and a[j].joined:
            nxt = a[j]
            if name_part(nxt, QUALIFIERS):
                return True
            if nxt.raw.isupper() and len(nxt.raw) == 1 and (j + 1 == len(a) or not a[j + 1].joined):
                return True  # "Hepatitis A", "Vitamin C"
            if mixed and nxt.norm in NAME_JOINERS and not nxt.cap:
                k = j
                while k < len(a) and k - j < 2 and a[k].norm in NAME_JOINERS and a[k].joined and not a[k].cap:
                    k += 1
                rest = a[k:]
                if rest and i == 0 and all(t.joined and (t.cap or t.norm in NAME_JOINERS) for t in rest) and rest[-1].cap:
                    return True  # the whole answer is another title: "Up in the Air" for "Up"
        return False

    def _repeats_question(self, a: list[Token], i: int, j: int) -> bool:
        q = self.question.norms
        span = _norms(a[i:j])
        if not _contains(q, span):
            return False
        before = i > 0 and _contains(q, _norms(a[i - 1 : j]))
        after = j < len(a) and _contains(q, _norms(a[i : j + 1]))
        return bool(before or after)

    def _candidates(self, a: list[Token], span: tuple[int, int], norms: list[str]) -> bool:
        """The key offered as one of several: "A or B", "either A or B", "A/B"."""
        i, j = span
        if "either" in norms and "or" in norms:
            return True
        if "or" in norms[i:j]:
            return True  # "Larry Page or Sergey Brin"
        if i > 0 and a[i - 1].norm == "or":
            return True
        if j < len(a) and a[j].norm == "or":
            return True
        if j < len(a) and a[j].gap.strip() == "/" or (i > 0 and a[i].gap.strip() == "/"):
            return True
        return False

    def _other_value(self, a: list[Token]) -> str:
        """A number or date key answered with another number or date: decided, no judge needed."""
        for key in self.keys:
            if key.date is not None and dates(a):
                return f"a different date from {_quote(key.text)}"
            if key.number is not None and any(t.number is not None for t in a):
                got = next(t for t in a if t.number is not None)
                return f"a different number ({got.raw}, not {key.text})"
        return ""


def _same(k: Token, t: Token) -> bool:
    """One word of a key and one of an answer: equal, or one is the other's possessive written
    without the apostrophe ("McDonalds" for "McDonald's")."""
    return k.norm == t.norm or (k.poss and t.norm == k.norm + "s") or (t.poss and k.norm == t.norm + "s")


def _find(key: Sequence[Token], a: Sequence[Token]) -> list[tuple[int, int]]:
    """Where the key's words stand in the answer; hyphenated words also match written together
    ("Spiderman" for "Spider-Man") and the other way round."""
    n = len(key)
    if not n:
        return []
    out = [(i, i + n) for i in range(len(a) - n + 1) if all(_same(k, t) for k, t in zip(key, a[i : i + n]))]
    if out:
        return out
    ck, ca = _compact(key), _compact(a)
    if len(ck[0]) == n and len(ca[0]) == len(a):
        return []
    m = len(ck[0])
    return [(ca[1][i][0], ca[1][i + m - 1][1]) for i in range(len(ca[0]) - m + 1) if ca[0][i : i + m] == ck[0]]


def _compact(toks: Sequence[Token]) -> tuple[list[str], list[tuple[int, int]]]:
    """Words with hyphenated runs joined ("spider man" -> "spiderman"), and each one's token range."""
    norms: list[str] = []
    spans: list[tuple[int, int]] = []
    for i, t in enumerate(toks):
        if norms and t.gap in ("-", "‐", "‑"):
            norms[-1] += t.norm
            spans[-1] = (spans[-1][0], i + 1)
        else:
            norms.append(t.norm)
            spans.append((i, i + 1))
    return norms, spans


def _contains(words: Sequence[str], part: Sequence[str]) -> bool:
    n = len(part)
    return n > 0 and any(list(words[i : i + n]) == list(part) for i in range(len(words) - n + 1))


def _span_text(answer: str, a: Sequence[Token], span: tuple[int, int]) -> str:
    """The words around an occurrence, for the reason: the longer name it sits in."""
    i, j = span
    lo = i - 1 if i > 0 and a[i].joined else i
    hi = j + 1 if j < len(a) and a[j].joined else j
    line = answer.split("\n", 1)[0]
    return line[a[lo].start : a[hi - 1].end] if a else ""


def _negated(a: Sequence[Token], i: int, j: int) -> bool:
    """A negation reaches the key: "not Paris", "isn't Paris", "instead of Paris", "neither ...
    Paris" within its clause, or "Paris is not ..." right after it. "Paris, not Lyon" negates Lyon."""
    k = i - 1
    reach = 0
    while k >= 0 and reach < NEGATION_REACH:
        t = a[k]
        if t.norm in NEGATORS or t.neg or t.norm in NEGATING_SINGLE:
            return True
        if k > 0 and (a[k - 1].norm, t.norm) in NEGATING_PAIRS:
            return True
        if _clause_break(a[k + 1]) or t.norm in CLAUSE_WORDS:
            break
        k -= 1
        reach += 1
    if j < len(a) and not _clause_break(a[j]):
        nxt = a[j]
        if nxt.neg and (nxt.norm[:-3] in COPULAS or nxt.norm in ("isnt", "wasnt", "arent", "werent", "doesnt", "didnt")):
            return True
        if nxt.norm in COPULAS and j + 1 < len(a) and a[j + 1].norm in ("not", "never"):
            return True
    return False


def permutations_of(parts: list[list[str]]) -> list[list[str]]:
    """Every order of a conjunction's parts joined by "and" (few parts: at most 4! orders)."""
    if len(parts) > 4:
        return [list(itertools.chain.from_iterable(parts))]
    out = []
    for order in itertools.permutations(parts):
        words: list[str] = []
        for n, p in enumerate(order):
            if n:
                words.append("and")
            words.extend(p)
        out.append(words)
    return out
