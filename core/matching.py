"""When is a model's answer correct? Exact match after normalisation, against any alias.

The paper scores exact match; like SQuAD-style evaluation we first fold case and
compatibility forms (NFKC), delete punctuation (so "U.S." matches "US"), drop the articles a/an/the and runs of spaces, so that
"The Beatles." matches "Beatles". Only the first line of the answer counts: the probe stops
generation at a newline, and anything after it is not the model's answer.
"""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Iterable, Sequence

_PUNCT = set(string.punctuation) | {"“", "”", "‘", "’", "«", "»", "–", "—", "…", "·"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPACES = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "")
    text = text.split("\n", 1)[0].casefold()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def is_correct(answer: str, aliases: Iterable[str]) -> bool:
    got = normalize_answer(answer)
    if not got:
        return False
    return any(got == normalize_answer(alias) for alias in aliases)


class AnswerMatcher:
    """``is_correct`` with the aliases normalised once, for the probe's hot loop."""

    def __init__(self, aliases: Iterable[str]) -> None:
        self.targets = frozenset(n for n in (normalize_answer(a) for a in aliases) if n)

    def __call__(self, answer: str) -> bool:
        got = normalize_answer(answer)
        return bool(got) and got in self.targets


_ARTICLE_PREFIXES = frozenset({"a", "an", "t", "th", "the"})
UNFINISHED = "\ufffd"  # what a decoder shows for the first bytes of a character still being generated


def _bare(word: str) -> str:
    """``word`` without combining marks, so a word still waiting for its accent compares as a prefix."""
    return "".join(ch for ch in unicodedata.normalize("NFD", word) if not unicodedata.combining(ch))


def _words(text: str) -> tuple[list[str], bool]:
    """Words of ``text`` after case, NFKC and punctuation folding; and whether the last is complete."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    complete = not text or text[-1].isspace()
    return text.split(), complete


class PrefixPruner:
    """Tells when an answer still being generated can no longer be correct.

    Used to stop sampling an answer early: the probe only needs to know whether a sample is
    correct, and once its first words differ from every alias no continuation can make it an
    exact match. The test is conservative: a partial last word that could still grow into an
    article (which normalisation drops) or into the alias's next word keeps the answer alive.
    """

    def __init__(self, aliases: Iterable[str]) -> None:
        self.targets = [w for w in (normalize_answer(a).split() for a in aliases) if w]

    def __call__(self, partial: str) -> bool:
        """True when no continuation of ``partial`` can match an alias (so generation may stop)."""
        if "\n" in partial:
            return False  # the answer is complete; the caller scores it
        # A character still arriving: a decoder shows an incomplete UTF-8 sequence as U+FFFD
        # ("Krak\ufffd" on the way to "Kraków"); what it becomes is unknown, so it may still
        # finish the last word, start the next one or be punctuation.
        words, last_complete = _words(partial.rstrip(UNFINISHED))
        tail = None if last_complete or not words else words.pop()
        words = [w for w in words if w not in ("a", "an", "the")]
        for target in self.targets:
            if len(words) > len(target) or target[: len(words)] != words:
                continue
            if tail is None or tail in _ARTICLE_PREFIXES:
                return False
            # the tail may still take a combining mark ("Jose" before "José"): compare without marks
            if len(words) < len(target) and _bare(target[len(words)]).startswith(_bare(tail)):
                return False
        return True


# -- the key mode: the answer key appears in the answer, as whole words --------------------------------

MATCH_MODES = ("auto", "exact", "key", "judge")
_KEY_BOUNDARY = frozenset(' \t\r\n,;:!?)]}"”»')  # after these, the word before them is complete


def _key_words(text: str) -> list[str]:
    """``normalize_answer``'s words, with the marks that close a word (, ; : ! ? brackets, quotes)
    read as spaces, so "Vathy,which" is two words; "U.S." still folds to "us"."""
    first = (text or "").split("\n", 1)[0]
    return normalize_answer("".join(" " if ch in _KEY_BOUNDARY else ch for ch in first)).split()


def _contains(words: Sequence[str], target: Sequence[str]) -> bool:
    n = len(target)
    return any(list(words[i : i + n]) == list(target) for i in range(len(words) - n + 1))


class KeyMatcher:
    """Correct when a normalised answer key (or alias) appears in the normalised answer as whole words.

    For sentence answers: "It's San Rafael." and "San Rafael is the capital of Marin County."
    both contain the key "San Rafael". Only the first line counts (``normalize_answer``), and a
    key inside a longer word does not count ("Paris" is not in "Parisian"). When the key is also
    in the ``question`` ("What is the capital of the canton of Jonzac?", key "Jonzac"), an
    occurrence that only repeats the question ("The capital of the canton of Jonzac is ...")
    does not count: the key must stand on its own, not inside a longer span of the question.
    """

    def __init__(self, keys: Iterable[str], question: str = "") -> None:
        self.targets = [t for t in {tuple(_key_words(k)) for k in keys} if t]
        self.question = _key_words(question)

    def _repeats_question(self, words: Sequence[str], i: int, n: int) -> bool:
        if not _contains(self.question, words[i : i + n]):
            return False
        before = i > 0 and _contains(self.question, words[i - 1 : i + n])
        after = i + n < len(words) and _contains(self.question, words[i : i + n + 1])
        return bool(before or after)

    def __call__(self, answer: str) -> bool:
        words = _key_words(answer)
        for t in self.targets:
            n = len(t)
            for i in range(len(words) - n + 1):
                if tuple(words[i : i + n]) == t and not self._repeats_question(words, i, n):
                    return True
        return False


class KeyPruner:
    """Stops an answer once it already contains a key as complete words: it is correct, and more
    of it cannot change that. (The newline stop ends the others; the token limit, the rest.)

    A key at the very end of the partial answer is not yet complete ("San Rafael" may still grow
    into "San Rafaela"), so generation goes on until a space or punctuation mark closes the word.
    """

    def __init__(self, keys: Iterable[str], question: str = "") -> None:
        self.matcher = KeyMatcher(keys, question)
        # a key that is also in the question may still turn out to repeat it ("Jonzac" + " Township"):
        # such answers run to their end and the matcher decides
        self.matcher.targets = [t for t in self.matcher.targets if not _contains(self.matcher.question, t)]

    def __call__(self, partial: str) -> bool:
        if "\n" in partial:
            return False  # the answer is complete; the caller scores it
        if partial and partial[-1] not in _KEY_BOUNDARY:
            cut = max(partial.rfind(c) for c in _KEY_BOUNDARY)
            partial = partial[: cut + 1] if cut >= 0 else ""
        return bool(partial) and self.matcher(partial)


class Mentions:
    """Does a text name one of these answers as whole words (after ``normalize_answer``'s folding)?

    The exemplar check uses it: an exemplar whose answer or question names a question's own
    answer would give that answer away in the prompt ("Who is B married to? A: A" shown before
    "Who is A married to?")."""

    def __init__(self, answers: Iterable[str]) -> None:
        self.targets = [t for t in {tuple(_key_words(a)) for a in answers} if t]

    def __call__(self, text: str) -> bool:
        words = _key_words(text)
        return any(_contains(words, t) for t in self.targets)
