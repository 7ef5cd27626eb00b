"""Answer keys and probe status: what short span a correct answer must contain, and which rows
the probe can check at all (issue 11).

People write gold answers as sentences ("It's San Rafael.", "Samos's capital is Vathy, which is
also its largest administrative centre."), and exact match against a sentence measures wording,
not knowledge. ``extract_key`` finds the fact in such an answer: the first run of content words
(a name, a number, a date) that the question does not already contain. ``classify`` decides
whether a row is probed at all: a task (rewrite, summarise, code ...) or a long-form answer has no
short fact to check, so it is kept and written back, but not probed.

Pure string heuristics, no model: fast on a million rows, the same on every machine, and shown in
the dataset preview so the user can check and edit them.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

__all__ = ["classify", "extract_key", "is_entity_shaped", "task_reason", "is_long_form", "is_code"]

# ----------------------------------------------------------------------------- words

# Function words and the usual padding of a sentence answer; never part of a key.
_STOP = frozenset(
    """
    a an the this that these those it it's its itself he he's she she's they they're them their his her
    hers i i'm me my we our you your there there's here that's what's who's which what who whom whose
    where when why how is was are were be been being am has have had do does did will would shall should
    can could may might must to of in on at by for from with within into onto upon about as than then so
    and or but nor not no yes yeah sure well also too very just only indeed actually probably definitely
    certainly oh ah um hmm believe think guess suppose reckon maybe perhaps answer correct right known called named located situated found lies lie sits
    born based situated near around approximately roughly about some one would you you'll find serves serve
    served acts act functions function remains remained became becomes lived grew up moved wrote written
    published penned authored by
    """.split()
)
# Lower-case words that may join the capitalised words of one name: "University of Oxford",
# "Rio de Janeiro", "Bosnia and Herzegovina", "Leonardo da Vinci".
_CONNECTORS = frozenset("of de la le du da del della di van von der den and y upon on el al bin & the".split())
# Copulas: the key usually follows one ("The capital of Samos is Vathy").
_COPULAS = frozenset("is was are were be it's that's 's".split())
# Words that make a short answer a sentence rather than a name.
_VERBS = frozenset(
    """
    is was are were be been being am has have had does did do lies lie sits located situated born founded
    wrote written died lived means called known named became become won married created built made find belongs belong
    serves serve would founded written published authored penned
    """.split()
)
_HEDGE = re.compile(r"\bI\s*(?:think|believe|guess|suppose|reckon|am|'m|’m)\b|\b(?:probably|maybe|perhaps)\b", re.I)
_OPENERS = frozenset(
    "definitely probably maybe perhaps certainly actually oh well sure answer about approximately roughly around nearly circa".split()
)
# Lower-case words that may stand inside a name given as an answer ("Duke Maximilian Joseph in
# Bavaria", "Husayn ibn Ali", "Carlos the Jackal").
_NAME_PARTICLES = _CONNECTORS | frozenset(
    "in at ibn bint ben tha zu ter te op aan dos das do des e i al el und et sur sous les lo los las der auf am to a an no"
    " nad pod im ap es".split()
)
_PREPOSITIONS = frozenset("in at on from by since during around near inside outside".split())
# Capitalised words (or numbers) only, at most six: a name, unless it opens a sentence ("It's X").
_SIMPLE_NAME = re.compile(r"([A-Z0-9][\w'’.\-]*)(?:,? [A-Z0-9][\w.\-]*){0,5}")
_SIMPLE_NAME = re.compile(_SIMPLE_NAME.pattern + r"\Z")
_PRONOUN_START = frozenset(
    "it it's its he he's she she's they they're this that that's there there's i i'm we you you'll".split()
)

_NOT_A_NAME_START = _PRONOUN_START | _VERBS | _OPENERS | _PREPOSITIONS | {"the", "a", "an"}

_TOKEN = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?|\w(?:[\w'’.\-]*\w)?|[,;:()\"“”]")
# A sentence ends at . ! ? after a lower-case word of 3+ letters ("St. Louis" and "D.C." do not end one).
_SENTENCE_END = re.compile(r"(?<=[a-z]{3}[.!?])\s+|(?<=[0-9][.!?])\s+(?=[A-Z])|\n+")
# Where the first clause of an answer ends.
_CLAUSE_END = re.compile(
    r",\s*(?=(?:which|who|whose|where|when|while|but|although|though|because|since|making|being|and\s+(?:it|its|is|was|has)\b)\b)"
    r"|;|\s[-–—]\s|[()]|:\s|\s(?:because|since|although|though|which)\s",
    re.IGNORECASE,
)


def _possessive(word: str) -> tuple[str, bool]:
    """``Samos's`` -> (``Samos``, True); other words unchanged."""
    for suffix in ("'s", "’s"):
        if len(word) > 2 and word.endswith(suffix):
            return word[: -len(suffix)], True
    if len(word) > 2 and word.endswith(("s'", "s’")):
        return word[:-1], True
    return word, False


def _norm(word: str) -> str:
    return word.casefold().replace("’", "'").strip(".")


class _Tok:
    __slots__ = ("text", "low", "start", "end", "poss", "punct", "cap", "stop")

    def __init__(self, m: re.Match) -> None:
        raw = m.group(0)
        self.punct = not (raw[0].isalnum() or raw[0] == "_")
        contraction = _norm(raw) in _STOP  # "it's", "that's": not a possessive
        word, self.poss = _possessive(raw) if not (self.punct or contraction) else (raw, False)
        self.text = word
        self.low = _norm(word)
        self.start = m.start()
        self.end = m.start() + len(word)
        self.stop = self.low in _STOP or _norm(raw) in _STOP
        self.cap = not self.punct and not self.stop and (word[0].isupper() or word[0].isdigit())


def _tokens(text: str) -> list[_Tok]:
    toks = [_Tok(m) for m in _TOKEN.finditer(text)]
    for i, t in enumerate(toks):
        # a capitalised function word inside a sentence is a name or part of one: "Take That",
        # "The Who", Stephen King's novel "It" (not "I", and not after a sentence end or a quote)
        if t.stop and not t.punct and t.text[:1].isupper() and t.low not in ("i", "i'm") and i > 0:
            prev = toks[i - 1]
            if not (prev.punct and prev.text in '"“(') and not text[: t.start].rstrip().endswith((".", "!", "?", ":")):
                t.cap, t.stop = True, False
                if toks[i - 1].low in ("the", "a", "an") and toks[i - 1].text[:1].isupper():
                    toks[i - 1].cap, toks[i - 1].stop = True, False
    return toks


def _question_words(question: str) -> tuple[set[str], list[list[str]]]:
    """The question's words (lower-case, possessives stripped) and its capitalised runs (names)."""
    toks = _tokens(question)
    words = {t.low for t in toks if not t.punct}
    runs = [[t.low for t in run] for run in _cap_runs(toks)]
    return words, runs


# ----------------------------------------------------------------------------- runs


def _cap_runs(toks: list[_Tok]) -> list[list[_Tok]]:
    """Maximal runs of capitalised words and numbers, joined by connectors ("Isle of Man"); a
    possessive ends its run ("Samos's capital" -> "Samos")."""
    runs: list[list[_Tok]] = []
    i, n = 0, len(toks)
    while i < n:
        if not toks[i].cap:
            i += 1
            continue
        run = [toks[i]]
        j = i + 1
        while j < n and not run[-1].poss:
            t = toks[j]
            if t.cap:
                run.append(t)
                j += 1
                continue
            # connectors inside a name: "of", "de la", "and" between capitalised words
            k = j
            while k < n and not toks[k].punct and toks[k].low in _CONNECTORS and k - j < 2:
                k += 1
            if k > j and k < n and toks[k].cap and toks[k].low not in _STOP:
                run.extend(toks[j:k])
                j = k
                continue
            break
        runs.append(run)
        i = j
    return runs


def _lower_runs(toks: list[_Tok]) -> list[list[_Tok]]:
    """Maximal runs of lower-case content words ("blue whale", "carbon dioxide")."""
    runs: list[list[_Tok]] = []
    cur: list[_Tok] = []
    for t in toks:
        if not t.punct and not t.stop and not t.cap:
            cur.append(t)
            if t.poss:
                runs.append(cur)
                cur = []
        else:
            if cur:
                runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return runs


def _span(text: str, run: list[_Tok]) -> str:
    return text[run[0].start : run[-1].end].strip(" ,")


def _trim(run: list[_Tok], qwords: set[str]) -> list[_Tok]:
    """Drop connectors at the edges, and trailing/leading parts that only repeat the question
    ("John Smith of Acme Corp" for "Who founded Acme Corp?" -> "John Smith")."""
    # split at connectors into segments
    segs: list[list[_Tok]] = [[]]
    for t in run:
        if t.low in _CONNECTORS and not t.cap:
            segs.append([])
        else:
            segs[-1].append(t)
    segs = [s for s in segs if s]
    while len(segs) > 1 and all(t.low in qwords for t in segs[-1]):
        segs.pop()
    while len(segs) > 1 and all(t.low in qwords for t in segs[0]):
        segs.pop(0)
    first, last = segs[0][0], segs[-1][-1]
    return run[run.index(first) : run.index(last) + 1]


def _key_in_clause(clause: str, qwords: set[str], qruns: list[list[str]]) -> Optional[str]:
    toks = _tokens(clause)
    runs = _cap_runs(toks)
    index = {id(t): i for i, t in enumerate(toks)}

    def after_copula(run: list[_Tok]) -> bool:
        i = index[id(run[0])]
        return i > 0 and (toks[i - 1].low in _COPULAS or toks[i - 1].low.endswith("'s"))

    def is_q(run: list[_Tok]) -> bool:
        return all(t.low in qwords or t.low in _CONNECTORS for t in run)

    # (a) the first name or number that says something the question does not
    for n, run in enumerate(runs):
        if is_q(run):
            continue
        i = index[id(run[0])]
        if n > 0 and i >= 2 and toks[i - 1].text == ",":
            prev = runs[n - 1]
            if index[id(prev[-1])] == i - 2 and is_q(prev) and after_copula(prev):
                # "The capital of Gmina Lipnik is Lipnik, Opatów County": one name with a comma
                return clause[prev[0].start : run[-1].end]
        # a date: "March 3, 1920"
        j = index[id(run[-1])]
        if j + 2 < len(toks) and toks[j + 1].text == "," and re.fullmatch(r"\d{4}", toks[j + 2].text):
            return clause[run[0].start : toks[j + 2].end]
        return _span(clause, _trim(run, qwords))
    # (b) part of a name in the question: "Grand Forks" for "Grand Forks County"
    for run in runs:
        low = [t.low for t in run]
        if any(low == q for q in qruns):
            continue
        if any(_is_subsequence(low, q) for q in qruns):
            return _span(clause, run)
    # (c) a name right after "is": "The capital of the arrondissement of Pontivy is Pontivy"
    for run in runs:
        if after_copula(run):
            return _span(clause, run)
    # (d) lower-case content words the question does not have: "blue whale", "honey"
    for run in _lower_runs(toks):
        while run and run[0].low in qwords:
            run = run[1:]
        while run and run[-1].low in qwords:
            run = run[:-1]
        if run:
            return _span(clause, run)
    # (e) the subject of "X is ...": "Pontivy is the capital of the arrondissement of Pontivy"
    if runs:
        first = runs[0]
        k = index[id(first[-1])] + 1
        verb = k < len(toks) and (toks[k].low in _COPULAS or (toks[k].stop and toks[k].low not in _CONNECTORS))
        if verb and all(not t.cap and not t.punct for t in toks[: index[id(first[0])]]):
            return _span(clause, first)
    return None


def _is_subsequence(part: list[str], whole: list[str]) -> bool:
    n = len(part)
    return n < len(whole) and any(whole[i : i + n] == part for i in range(len(whole) - n + 1))


# ----------------------------------------------------------------------------- public


def is_entity_shaped(answer: str, question: str = "") -> bool:
    """True when ``answer`` is a name, number or short phrase rather than a sentence: it is then
    its own key ("San Rafael", "Lipnik, Opatów County", "1987", "Ferdinand II of Aragon",
    "blue whale").

    A sentence has function words ("It's San Rafael.", "Written by Tom Robbins.", "Houston, I
    believe.", "Capital: Onawa."), or mixes a name with lower-case words ("Aaviku belongs to
    Estonia"); with the ``question``, a short answer that repeats one of its lower-case words
    ("Bees make honey." for "What do bees make?") is a sentence too.
    """
    text = answer.strip().rstrip(".!")
    m = _SIMPLE_NAME.match(text)
    if m is not None and m.group(1).lower() not in _NOT_A_NAME_START:
        return True  # fast path: "Country 5", "San Rafael", "Lipnik, Opatów County"
    if not text or "\n" in text or re.search(r"[;:?]|\s[-–—]\s", text) or _HEDGE.search(text):
        return False
    toks = [t for t in _tokens(text) if not t.punct]
    if len(toks) == 1:
        return True  # one word is its own key ("It", the novel)
    if len(toks) > 10:
        return False
    first = toks[0].low
    if first in _PRONOUN_START or first in _VERBS or first in _OPENERS or first in _PREPOSITIONS:
        return False  # "It's San Rafael", "Written by ...", "Definitely Groesbeck", "In 1920"

    def namey(t: _Tok) -> bool:
        return any(c.isupper() or c.isdigit() for c in t.text)

    names = [t for t in toks if namey(t)]

    def particle(i: int, t: _Tok) -> bool:  # "Jablonec nad Nisou", "Taira no Tokuko"
        inside = 0 < i < len(toks) - 1 and namey(toks[i - 1]) and namey(toks[i + 1])
        return t.low in _NAME_PARTICLES or (inside and len(t.low) <= 3 and t.low not in _STOP)

    loose = [t for i, t in enumerate(toks) if not namey(t) and not (names and particle(i, t))]
    if any((t.stop and t.low not in _CONNECTORS and t.low not in ("a", "an")) or t.low in _VERBS for t in loose):
        return False  # "Aaviku belongs to Estonia", "Houston is the one"
    if question and len(toks) >= 3:
        qwords = {t.low for t in _tokens(question) if not t.punct}
        subject = [t for t in names if t.low in qwords and not t.low.isdigit() and t.low not in _STOP]
        if subject and loose:
            return False  # "The Titanic sank in 1912." for "What year did the Titanic sink?"
        if any(t.low in qwords and t.low not in _CONNECTORS for t in loose if t is not toks[-1]):
            return False  # "Bees make honey." for "What do bees make?"
    if names:
        # a name, maybe with a common noun: "Carlos the Jackal", "Western film", "Linux kernel"
        # (or a title: "Ab urbe condita libri"); the function words and verbs are checked above
        return not loose or len(toks) <= 6
    if len(toks) > 5:
        return False
    return True


def extract_key(question: str, answer: str) -> Optional[str]:
    """The short span of ``answer`` a correct answer to ``question`` must contain, or None.

    An entity-shaped answer is its own key. Otherwise the question's wh-word says what kind of key
    to look for first: a date for "when" and "what year" questions, a number (with its unit) for
    "how many" and "how tall" ones ("The Titanic sank in 1912." -> "1912"; "Mount Everest is 8,849
    metres tall." -> "8,849 metres"). Else each sentence in turn (a chat answer's "Sure!" has
    none) is cut into clauses (before ", which", ";", " - ", "(" ...), and in the first clause that
    has one, the key is the first name or number the question does not already contain ("It's San
    Rafael." -> "San Rafael"; "Acme Corp was founded by John Smith in 1920." -> "John Smith"),
    else part of a name in the question ("Grand Forks" for "Grand Forks County"), else the
    lower-case content words the question lacks ("The blue whale is the largest mammal." ->
    "blue whale"). A key is never a word of the question alone, and never the whole sentence.
    """
    text = answer.strip()
    if not text:
        return None
    if is_entity_shaped(text, question):
        return text.rstrip(".").strip() or text
    typed = _typed_key(question, text)
    if typed:
        return typed
    qwords, qruns = _question_words(question)
    for sentence in _SENTENCE_END.split(text):
        if not sentence.strip() or _PLEASANTRY.match(sentence.strip()):
            continue
        for clause in _CLAUSE_END.split(sentence):
            if clause and clause.strip():
                key = _key_in_clause(clause, qwords, qruns)
                if key:
                    key = key.strip(' ,."“”')
                    if key and key != text.rstrip(".!").strip():
                        return key
    return None


# chat answers open with a pleasantry that holds no fact: "Sure!", "Great question!", "Of course."
_PLEASANTRY = re.compile(
    r"^(?:sure(?: thing)?|certainly|of course|absolutely|great question|good question|happy to help|"
    r"glad you asked|no problem|okay|ok|yes|well|hello|hi)\W*$",
    re.IGNORECASE,
)


def question_kind(question: str) -> str:
    """What a question asks for, by its wh-word: "date", "year", "number" or ""."""
    q = question.strip().lower()
    if re.search(r"\b(?:what|which|in what|in which)\s+year\b", q):
        return "year"
    if re.match(r"(?:\w+\s+)?when\b", q) or re.search(r"\b(?:what|which)\s+(?:date|day)\b", q):
        return "date"
    if re.search(r"\bhow\s+(?:many|much|tall|long|high|far|old|big|deep|wide|heavy|large|fast)\b", q) or re.search(
        r"\bwhat\s+(?:is|was)\s+the\s+(?:population|height|length|area|distance|number|temperature)\b", q
    ):
        return "number"
    return ""


def _typed_key(question: str, text: str) -> Optional[str]:
    """A date or number key, where the question asks for one and the answer states one the
    question does not already contain."""
    kind = question_kind(question)
    if not kind:
        return None
    from ..scoring.numbers import dates
    from ..scoring.text import tokens

    toks = tokens(text)
    qnorms = {t.norm for t in tokens(question)}
    line = text.split("\n", 1)[0]
    if kind in ("year", "date"):
        for d in dates(toks):
            span = toks[d.start : d.end]
            if not all(t.norm in qnorms for t in span):
                return line[span[0].start : span[-1].end]
    if kind in ("number", "date", "year"):
        from ..scoring.words import UNITS

        for i, t in enumerate(toks):
            if t.number is not None and t.norm not in qnorms:
                end = i + 1
                while end < len(toks) and end - i <= 2 and toks[end].norm in UNITS and toks[end].joined:
                    end += 1
                return line[t.start : toks[end - 1].end]
    return None


# ----------------------------------------------------------------------------- status

# Imperatives that make a question a task: the answer is produced text, not a fact to recall.
_TASK_VERBS = frozenset(
    """
    rewrite rephrase paraphrase reword summarise summarize summarization classify categorize categorise
    translate write compose draft generate create list convert fix correct edit implement code program
    proofread shorten simplify outline brainstorm design develop complete continue format sort suggest
    compare analyse analyze evaluate critique improve expand elaborate extract respond reply imagine
    pretend act role-play debug refactor solve calculate plan make tell give
    """.split()
)
_POLITE = re.compile(r"^(?:please|kindly|can you|could you|would you|will you|i want you to|i need you to|help me)\s+", re.I)
_LEAD_PHRASE = re.compile(r"^(?:given|using|based on|from|for|in|with|consider|read)\b[^,:.]*[,:]\s*", re.I)
_CODE = re.compile(
    r"```|^\s*(?:def |class |import |from \S+ import |#include|function |public |SELECT |for \(|if \()|;\s*\n|\{\s*\n", re.M
)


_TASK_TRIGGERS = _TASK_VERBS | frozenset(
    "please kindly can could would will i help given using based from for in with consider read explain".split()
)


_maybe_code = re.compile(r"[`;{(\n]|def |import |class |function ").search


def _first_word(text: str) -> str:
    m = re.match(r"\s*([A-Za-z][\w-]*)", text)
    return m.group(1).lower() if m else ""


def is_code(answer: str) -> bool:
    """True when the answer is (or holds) program code."""
    return bool(_CODE.search(answer))


def task_reason(question: str, answers: Iterable[str], extra_input: str = "") -> bool:
    """True when the row asks to produce or transform text (rewrite, summarise, classify,
    translate, write, list, code ...) rather than to recall a fact, or its answer is code.

    Conservative: "Who wrote Hamlet?" and "Name the capital of France." stay questions.
    """
    if any(_maybe_code(a) and is_code(a) for a in answers):
        return True
    q = question.strip()
    head = q.split(None, 1)[0].lower().strip(",.:;!?") if q else ""
    if head not in _TASK_TRIGGERS:
        return False  # fast path: "Which country ...", "Who wrote ..."
    for _ in range(2):
        q = _POLITE.sub("", q)
    candidates = [q]
    lead = _LEAD_PHRASE.match(q)
    if lead:
        candidates.append(q[lead.end() :])
    for c in candidates:
        w = _first_word(c)
        if w == "explain" and re.match(r"\s*explain\s+how\s+to\b", c, re.I):
            return True
        if w == "give" and not re.match(
            r"\s*give\s+(?:me\s+)?(?:\d+|a\s+list|some|several|three|five|ten|two|examples?)\b", c, re.I
        ):
            continue
        if w == "tell" and not re.match(r"\s*tell\s+(?:me\s+)?(?:a|an)\s+(?:story|joke|poem)\b", c, re.I):
            continue
        if w == "make" and not re.match(r"\s*make\s+(?:a|an|me)\b", c, re.I):
            continue
        if w == "list" and q.rstrip().endswith("?"):
            continue
        if w in _TASK_VERBS:
            return True
    return False


def word_count(text: str) -> int:
    return len(text.split())


_OPEN_ENDED = re.compile(
    r"\b(?:depends on|it depends|there is no (?:single|one|simple)|no one knows|opinions (?:vary|differ)|"
    r"(?:is|are) subjective|a matter of (?:taste|opinion))\b",
    re.I,
)


def is_long_form(answer: str, max_words: int = 40) -> bool:
    """True when the answer is long or open-ended: more than ``max_words`` words, several
    paragraphs, three sentences and more, or an answer that says there is no single answer
    ("That depends on whom you ask")."""
    text = answer.strip()
    if word_count(text) > max_words or "\n\n" in text or _OPEN_ENDED.search(text):
        return True
    return len([s for s in _SENTENCE_END.split(text) if s.strip()]) >= 3


def classify(
    question: str,
    answers: tuple[str, ...],
    *,
    reason: str = "",
    key_column: tuple[str, ...] = (),
    override: Optional[str] = None,
) -> tuple[str, tuple[str, ...], str]:
    """``(reason, keys, key_source)`` for one row: ``reason`` is ``""`` when the row is probed.

    The checks run in this order: a reason already found (``multi-turn``, ``no-answer``); a task
    rather than a fact (``task``); then the answer key: a key the user edited in the preview
    (``edited``), a key column (``column``), the answers themselves when they are entity-shaped
    (``answer``, no keys), or one key extracted from each sentence answer (``extracted``). A long
    answer (``is_long_form``) is ``long-form`` and a sentence answer without an extractable key is
    ``no-key``, unless the user gave the key.
    """
    if reason:
        return reason, (), "answer"
    if not answers:
        return "no-answer", (), "answer"
    if task_reason(question, answers):
        return "task", (), "answer"
    if override is not None and override.strip():
        edited = tuple(dict.fromkeys(k.strip() for k in override.split("|") if k.strip()))
        return "", edited, "edited"  # "Vathy | Samos town": aliases, as in the preview
    if key_column:
        return "", key_column, "column"
    if len(answers) == 1 and " " not in answers[0] and len(answers[0]) < 40:
        return "", (), "answer"  # fast path: one word
    if all(is_entity_shaped(a, question) for a in answers):
        return "", (), "answer"
    if any(is_long_form(a) for a in answers):
        return "long-form", (), "answer"
    keys: dict[str, None] = {}
    for a in answers:
        k = extract_key(question, a)
        if k:
            keys.setdefault(k, None)
    if not keys:
        return "no-key", (), "answer"  # said, not guessed: the user can give the key in the preview
    return "", tuple(keys), "extracted"
