"""Is an occurrence of the key the answer, or the same words saying something else?

The key rules find the key's words in an answer; these checks read what the words around it say,
the way a careful grader does (issue 18, second held-out part):

* a name made of common words used as a place or as an ordinary word: "It was recorded in
  Europe." for the band Europe, "Daft Punk, their music fills the air." for the duo Air, "Yes, it
  was Genesis." for the band Yes, "It's The Shining." for the novel It;
* an answer that states another name as the answer and mentions the key only on the side: "The
  longest river in Europe is the Danube; the Volga is shorter." for the Volga, "It was developed
  by Louis Pasteur, building on the ideas of Edward Jenner." for Jenner.
"""

from __future__ import annotations

from typing import Optional, Sequence

from .text import ARTICLES, Token
from .words import CLAUSE_BREAKS, STOP

# words of a question that asks for the name of a group or a work: there a name made of common
# words is a name, and the same words used as a place or a plain word are not the answer
WORK_NOUNS = frozenset(
    """
    band bands group duo trio quartet film films movie novel book album song single musical play opera
    sitcom series magazine newspaper painting poem
    """.split()
)
# prepositions that make a capitalised word a place: "recorded in Europe", "a band from Kansas"
LOCATIVES = frozenset("in from near across around throughout outside inside within".split())
# a name joined by these stays one name: "Bertha von Suttner", "Isle of Man"
_JOINERS = frozenset("of de la le du da del di van von der".split())
_COPULAS = frozenset("is was are were".split())
_WH = frozenset("who whom whose what which when where why how".split())
_FUNCTION = _COPULAS | frozenset("of in on at to for by with and or did does do has had have it its".split())


def common_word_misuse(
    a: Sequence[Token], i: int, j: int, key_norms: Sequence[str], question_words: frozenset[str], work: bool
) -> bool:
    """The key's words at ``a[i:j]`` are not the name (the answer is not the key alone)."""
    if all(n in STOP for n in key_norms):
        if a[j - 1].poss and j < len(a):
            return True  # "It's The Shining." for the novel It: "it's" is "it is"
        if a[i].sentence_start and j < len(a) and "," in a[j].gap:
            return True  # "Yes, it was Genesis." for the band Yes: an interjection
    if not work:
        return False
    if i > 0 and a[i].cap and a[i - 1].norm in LOCATIVES and not a[i - 1].sentence_start:
        return True  # a place: "It was recorded in Europe."
    if not all(t.cap for t in a[i:j]) and _other_name(a, i, j, key_norms, question_words):
        return True  # an ordinary word beside another name: "Pure madness, it was The Specials."
    return False


def _other_name(a: Sequence[Token], i: int, j: int, key_norms: Sequence[str], question_words: frozenset[str]) -> bool:
    keys = set(key_norms)
    for n, t in enumerate(a):
        if i <= n < j or not t.cap or n == 0 or t.number is not None:
            continue
        if t.norm in STOP or t.norm in ARTICLES or t.norm in question_words or t.norm in keys:
            continue
        return True
    return False


def other_answer(
    a: Sequence[Token], span: tuple[int, int], key_norms: Sequence[str], question_words: frozenset[str]
) -> Optional[str]:
    """A name the answer gives as the answer, other than the key: after "is/was" closing a clause
    that restates the question ("the capital of Australia is Sydney"), or after "by" following a
    verb of the question or a passive ("developed by Louis Pasteur", "was written by Percy
    Shelley"). None when there is none, or when the name holds the key."""
    content = {w for w in question_words if w not in _FUNCTION and w not in ARTICLES and w not in _WH}
    keys = set(key_norms)
    for c, t in enumerate(a):
        if t.norm in _COPULAS:
            left = _clause_before(a, c)
            if sum(1 for x in left if x.norm in content) < 2:
                continue
        elif t.norm == "by" and c > 1 and (a[c - 1].norm in content or a[c - 2].norm in _COPULAS) and a[c - 1].norm not in keys:
            pass  # "developed by Louis Pasteur", "was written by Percy Shelley"
        else:
            continue
        name = _name_after(a, c + 1)
        if name is None:
            continue
        lo, hi = name
        if lo < span[1] and span[0] < hi:
            continue  # the key is (in) that name
        norms = [x.norm for x in a[lo:hi]]
        k = len(key_norms)
        if any(norms[m : m + k] == list(key_norms) for m in range(len(norms) - k + 1)) or all(n in question_words for n in norms):
            continue
        return " ".join(x.raw for x in a[lo:hi])
    return None


def _clause_before(a: Sequence[Token], c: int) -> list[Token]:
    out: list[Token] = []
    k = c - 1
    while k >= 0 and len(out) < 12:
        out.append(a[k])
        if any(ch in CLAUSE_BREAKS for ch in a[k].gap) or a[k].sentence_start:
            break
        k -= 1
    return out


def _name_after(a: Sequence[Token], k: int) -> Optional[tuple[int, int]]:
    """The capitalised name that follows ``a[k]`` within its clause, after at most three lower-case
    words ("the Danube", "the oral vaccine ... Albert Sabin" is too far)."""
    skipped = 0
    while k < len(a) and not a[k].cap:
        if any(ch in CLAUSE_BREAKS for ch in a[k].gap) or a[k].number is not None:
            return None
        if a[k].norm not in ARTICLES:
            skipped += 1
        if skipped > 3:
            return None
        k += 1
    if k >= len(a) or any(ch in CLAUSE_BREAKS for ch in a[k].gap) or a[k].norm in STOP:
        return None
    end = k + 1
    while end < len(a) and a[end].joined and (a[end].cap or a[end].norm in _JOINERS):
        end += 1
    while end - 1 > k and a[end - 1].norm in _JOINERS:
        end -= 1
    return k, end
