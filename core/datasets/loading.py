"""Loading a dataset file into examples: parse, resolve the shape, validate every row, and
refuse to go on quietly when rows are broken.

The file is read once, as a stream where its format allows; the same bytes are hashed
(``file_sha256``) and parsed. ``content_sha256``
hashes the parsed examples instead, so re-formatting the file (indentation, key order, CRLF) does
not invalidate a probe, while any change of a question, answer, group or id does.
"""

from __future__ import annotations

import gc
import hashlib
import json
from bisect import bisect_left
from dataclasses import replace
from hashlib import blake2b
from itertools import chain
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

from ..errors import DatasetError
from ..scoring.text import normalize_answer
from .files import check_path, read_head, resolve_format
from .keys import classify
from .readers import _SAMPLE_ROWS, Item, columns_of
from .records import json_default
from .rows import Extractor, RowProblem
from .shapes import resolve_shape, validate_mapping
from .stream import open_source
from .types import NOT_PROBED, REASONS, Dataset, Example, PathLike, Problem

_FINGERPRINT_CHUNK = 10_000
_SKIP_HINT = "To go on, fix the file or choose to skip invalid rows (--skip-invalid)."


def load_dataset(
    path: PathLike,
    *,
    mapping: Optional[dict[str, str]] = None,
    skip_invalid: bool = False,
    fmt: Optional[str] = None,
    max_problems: int = 1000,
    key_overrides: Optional[dict[int, str]] = None,
    limit: Optional[int] = None,
) -> Dataset:
    """Read a fine-tuning dataset file into examples.

    JSON Lines, CSV/TSV and Parquet files are streamed (``stream``): memory holds the rows kept,
    never the file's text, and the bytes read are hashed on the way. A JSON array is one
    document and is read whole.

    Every well-formed row loads. One the probe cannot check (a multi-turn conversation, no
    answer, a task rather than a fact, a long-form answer; see ``keys.classify``) is kept in
    ``Dataset.unprobed`` with status NOT_PROBED and a reason, so the plan keeps it and the export
    writes it back; the others are ``Dataset.examples``, each with its answer key (``keys``,
    ``key_source``). ``key_overrides`` maps a row's line (as in ``Example.line``) to a key the
    user edited in the preview; it wins over the key column and the extracted key.

    Rows that cannot be used (bad JSON, not an object, non-UTF-8 bytes, a line over 8 MiB, a
    missing or empty question, a value of the wrong kind, a repeated explicit id) are problems. By
    default the first problem is raised as one ``DatasetError`` (with a count of the rest), because
    silently probing a subset of the user's data would make the report lie about the data set.
    With ``skip_invalid=True`` those rows are skipped and listed in ``Dataset.problems`` (at most
    ``max_problems`` kept, all counted in ``problem_count``); loading still fails if nothing is
    left.

    Duplicates (same group and the same question up to case and whitespace) are skipped and
    listed as (duplicate line, first line); when a duplicate lists answers the first occurrence
    lacks, those answers are merged into the first occurrence's aliases, since both rows state
    accepted answers to the same question. ``Example.raw`` of the first occurrence is unchanged.
    Such merges are not silent: they are listed in ``Dataset.merged_duplicates`` and named in
    ``Dataset.summary_line``; a merged question that now holds two different answers is
    multi-answer (``Example.multi_answer``).

    An explicit id that repeats on a different question is a problem for the later row (naming
    both lines); a row with an empty id falls back to the hash id.

    ``limit`` gives what ``take_balanced(load_dataset(path), limit)`` gives (the same examples,
    merged answers and content fingerprint) without keeping every row: of the probed rows only the
    first ``limit`` of each of the first ``limit`` groups are kept, the only ones the balanced
    pick can take. Every row is still read and checked, every later duplicate of a kept question
    still merges its answers into it, and the not-probed rows are all kept (the export writes them
    back). What differs from a full load: ids and duplicates are compared with the kept rows and
    the not-probed rows only, so ``duplicates`` lists only repeats of those, a kept row whose
    explicit id repeats a probed row that was not kept is probed rather than refused, and a
    not-probed chat whose first question is a probed question that was not kept keeps the
    question's id (a full load gives it an id from the whole record).
    """
    if limit is not None and limit < 1:
        raise DatasetError(f"The number of questions to take must be at least 1 (got {limit}).")
    # Parsing allocates hundreds of thousands of small dicts and lists that all stay alive; the
    # cyclic GC would rescan them again and again (about a third of the load time) for nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(path, mapping, skip_invalid, fmt, max_problems, key_overrides or {}, limit)
    finally:
        if enabled:
            gc.enable()


def _load(
    path: PathLike,
    mapping: Optional[dict[str, str]],
    skip_invalid: bool,
    fmt: Optional[str],
    max_problems: int,
    key_overrides: dict[int, str],
    limit: Optional[int],
) -> Dataset:
    """``load_dataset`` without the GC switch: open, resolve the shape, collect, check."""
    p = check_path(path)
    head = read_head(p)
    fmt = resolve_format(p, head, fmt)
    user_mapping = validate_mapping(mapping)

    source = open_source(p, fmt, head)
    sample = _sample(source.items)
    fmt = source.fmt
    unit = "record" if fmt in ("json", "parquet") else "line"
    _require_a_record(sample, p, unit)
    columns = source.columns if source.columns is not None else columns_of(sample)
    if fmt not in ("csv", "tsv") and any(c not in columns for c in user_mapping.values()):
        # The user named a column the first records lack; it may only appear in later ones.
        columns = columns_of(open_source(p, fmt, head).items, None)
    shape, roles, error = resolve_shape(columns, user_mapping, p.name)
    if error:
        raise DatasetError(error)

    rows = _Rows(unit, roles.get("id"), max_problems, key_overrides, limit)
    rows.collect(chain(sample, source.items), Extractor(shape, roles, fmt))
    del sample
    file_sha = source.sha256()
    rows.check(p, skip_invalid)
    examples, unprobed = rows.examples()
    ds = Dataset(
        path=str(p),
        format=fmt,
        shape=shape,
        mapping=roles,
        examples=examples,
        file_sha256=file_sha,
        content_sha256="",
        duplicates=rows.duplicates,
        merged_duplicates=rows.merged,
        problems=rows.problems,
        problem_count=rows.problem_count,
        unprobed=unprobed,
    )
    if limit is not None and limit < len(examples):
        return take_balanced(ds, limit)
    ds.content_sha256 = content_fingerprint(_in_file_order(examples, unprobed))
    return ds


def _sample(items: Iterator[Item]) -> list[Item]:
    """The items up to the ``_SAMPLE_ROWS``-th record (all of them when fewer): their keys decide
    the shape; the rest of ``items`` is left to stream."""
    sample: list[Item] = []
    records = 0
    for item in items:
        sample.append(item)
        if not isinstance(item[1], Problem):
            records += 1
            if records >= _SAMPLE_ROWS:
                break
    return sample


def _in_file_order(examples: list[Example], unprobed: list[Example]) -> list[Example]:
    """Probed and not-probed rows together, in file order (what the fingerprint covers)."""
    if not unprobed:
        return examples
    return sorted([*examples, *unprobed], key=lambda ex: ex.line)


def _require_a_record(items: list[Item], p: Path, unit: str) -> None:
    """Fail when no row parsed at all: the first problem says more than "no columns found"."""
    if any(not isinstance(rec, Problem) for _, rec in items):
        return
    bad = [rec for _, rec in items if isinstance(rec, Problem)]
    more = len(bad) - 1
    tail = f" (and {more} more problem{'s' if more != 1 else ''})" if more > 0 else ""
    raise DatasetError(
        f"{p.name}: no usable rows. {_sentence(_relabel(bad[0], unit).describe(p) + tail)} Fix the file and try again."
    )


class _Rows:
    """The examples being collected, with the duplicates and problems met on the way.

    Each row becomes its ``Example`` at once (a million rows must not be held twice, as lists
    and then as examples); the rare row a later duplicate adds aliases (and their keys) to is
    replaced by a new ``Example``. Only probed rows are merged as duplicates; a not-probed row is
    kept as it is (two chats may share a first question and differ later), unless it repeats an
    earlier not-probed row exactly.
    """

    def __init__(
        self, unit: str, id_col: Optional[str], max_problems: int, key_overrides: dict[int, str], limit: Optional[int] = None
    ) -> None:
        self.unit = unit
        self.limit = limit
        self.per_group: dict[str, int] = {}  # with a limit: probed rows kept per group, groups in order
        self.id_col = id_col
        self.max_problems = max(1, max_problems)
        self.key_overrides = key_overrides
        self.rows: list[Example] = []
        # _question_key -> the first row's line (an int its Example holds anyway; rows are in line order)
        self.by_question: dict[bytes, int] = {}
        self.by_record: dict[str, int] = {}
        self.id_lines: dict[str, int] = {}
        self.duplicates: list[tuple[int, int]] = []
        self.merged: list[tuple[int, int]] = []  # duplicates whose answers differ: merged, reported
        self.problems: list[Problem] = []
        self.problem_count = 0

    def add_problem(self, problem: Problem) -> None:
        """Count every problem, but keep only the first ``max_problems`` (a broken 1M-row file)."""
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    def collect(self, items: Iterable[Item], extract: Extractor) -> None:
        """Validate every item in file order; one loop with local names, as it runs per row."""
        unit, rows, by_question, id_lines = self.unit, self.rows, self.by_question, self.id_lines
        overrides, limit, per_group = self.key_overrides, self.limit, self.per_group
        # Without an id column a probed row's id is the hash of its group and question, which
        # by_question already tells apart: its id is not stored twice (a million rows: 40 MB).
        track_ids = self.id_col is not None
        for line, rec in items:
            if isinstance(rec, Problem):
                self.add_problem(_relabel(rec, unit))
                continue
            try:
                row = extract(rec)
            except RowProblem as rp:
                self.add_problem(Problem(line, rp.field, rp.message, unit))
                continue
            question, answers, group, ident = row.question, row.answers, row.group, row.ident
            reason, keys, key_source = classify(
                question, answers, reason=row.reason, key_column=row.keys, override=overrides.get(line)
            )
            if reason:
                self._add_unprobed(line, rec, row, reason)
                continue
            key = _question_key(group, question)
            first = by_question.get(key)
            if first is not None:
                self._merge_duplicate(first, line, answers, keys, key_source)
                continue
            if limit is not None:
                kept = per_group.get(group)
                if (kept is None and len(per_group) >= limit) or (kept is not None and kept >= limit):
                    continue  # take_balanced can never pick it
            ex_id = ident if ident is not None else _hash_id(group, question)
            seen_line = id_lines.get(ex_id)
            if seen_line is not None:
                self._repeated_id(line, ex_id, seen_line, explicit=ident is not None)
                continue
            if track_ids or ident is not None:
                id_lines[ex_id] = line
            by_question[key] = line
            if row.system or key_source != "answer":
                rows.append(Example(ex_id, question, answers, group, line, rec, keys, key_source, row.system))
            else:  # an entity-shaped answer is its own key
                rows.append(Example(ex_id, question, answers, group, line, rec))
            if limit is not None:
                per_group[group] = per_group.get(group, 0) + 1

    def _add_unprobed(self, line: int, rec: Mapping[str, Any], row: Any, reason: str) -> None:
        """Keep a row the probe cannot check; only an exact repeat of an earlier one is a duplicate."""
        record = json.dumps(rec, ensure_ascii=False, sort_keys=True, default=json_default)
        first = self.by_record.get(record)
        if first is not None:
            self.duplicates.append((line, self.rows[first].line))
            return
        ex_id = row.ident
        if ex_id is None:
            ex_id = _hash_id(row.group, row.question)
            if ex_id in self.id_lines or self._probed_id(row.group, row.question) == ex_id:
                ex_id = _hash_id(row.group, record)  # e.g. two chats with the same first question
        seen_line = self.id_lines.get(ex_id)
        if seen_line is not None:
            self._repeated_id(line, ex_id, seen_line, explicit=row.ident is not None)
            return
        self.id_lines[ex_id] = line
        self.by_record[record] = len(self.rows)
        self.rows.append(
            Example(ex_id, row.question, row.answers, row.group, line, rec, (), "answer", row.system, NOT_PROBED, reason)
        )

    def _probed_id(self, group: str, question: str) -> Optional[str]:
        """The id of the probed row that asks ``question`` in ``group`` (up to case and spaces)."""
        first_line = self.by_question.get(_question_key(group, question))
        if first_line is None:
            return None
        return self.rows[bisect_left(self.rows, first_line, key=_line_of)].id

    def _merge_duplicate(
        self, first_line: int, line: int, answers: tuple[str, ...], keys: tuple[str, ...], key_source: str
    ) -> None:
        """Both rows state accepted answers to the same question: keep the first, add new aliases
        (and, when either row has keys, the new row's keys)."""
        index = bisect_left(self.rows, first_line, key=_line_of)
        first = self.rows[index]
        self.duplicates.append((line, first.line))
        known = list(first.answers)
        seen = {normalize_answer(a) for a in known}
        if any(normalize_answer(a) not in seen for a in answers):
            self.merged.append((line, first.line))
        mine, source = list(first.keys), first.key_source
        if source == "answer" and key_source != "answer":
            mine, source = list(known), key_source  # the first row's answers are its keys
        for a in answers:
            if a not in known:
                known.append(a)
        if source != "answer":
            for k in keys or answers:
                if k not in mine:
                    mine.append(k)
        new_keys = tuple(mine) if first.system or source != "answer" else ()
        if (tuple(known), new_keys, source) != (first.answers, first.keys, first.key_source):
            self.rows[index] = replace(first, answers=tuple(known), keys=new_keys, key_source=source)

    def _repeated_id(self, line: int, ex_id: str, seen_line: int, *, explicit: bool) -> None:
        unit = self.unit
        if explicit:
            msg = f"the id '{ex_id}' is already used on {unit} {seen_line}; ids must be unique"
        else:
            msg = f"its generated id '{ex_id}' equals the id on {unit} {seen_line}; give the rows unique ids"
        self.add_problem(Problem(line, self.id_col, msg, unit))

    def check(self, p: Path, skip_invalid: bool) -> None:
        """Raise unless the rows may be used: any problem without ``skip_invalid``, or no row."""
        problems = self.problems
        if self.problem_count and not skip_invalid:
            more = self.problem_count - 1
            tail = f" (and {more} more problem{'s' if more != 1 else ''})" if more else ""
            err = DatasetError(f"{_sentence(problems[0].describe(p) + tail)} {_SKIP_HINT}")
            err.problems = list(problems)  # type: ignore[attr-defined]  # for the GUI's table
            err.problem_count = self.problem_count  # type: ignore[attr-defined]
            raise err
        if not self.rows:
            lead = f" The first: {_sentence(problems[0].describe(p))}" if problems else ""
            raise DatasetError(
                f"{p.name}: no usable rows; all {self.problem_count} rows have problems.{lead} Fix the file "
                f"or check the column mapping."
            )
        if not any(not r.reason for r in self.rows):
            counts: dict[str, int] = {}
            for r in self.rows:
                counts[r.reason] = counts.get(r.reason, 0) + 1
            why = ", ".join(f"{n} {REASONS[r].split(' (')[0]}" for r, n in counts.items())
            raise DatasetError(
                f"{p.name}: nothing to probe. All {len(self.rows)} rows load, but none is a factual question "
                f"with a short answer ({why}). KnowMix checks what a model already knows from such questions; "
                f"if the answers hold a short fact, name the column that holds it (--map key=COLUMN), or check "
                f"the column mapping."
            )

    def examples(self) -> tuple[list[Example], list[Example]]:
        """The probed and the not-probed rows, now that no duplicate can add aliases."""
        self.by_question, self.by_record, self.id_lines = {}, {}, {}  # not needed any more
        rows, self.rows = self.rows, []
        probed = [ex for ex in rows if not ex.reason]
        unprobed = [ex for ex in rows if ex.reason] if len(probed) < len(rows) else []
        return probed, unprobed


def _line_of(ex: Example) -> int:
    return ex.line


def _relabel(problem: Problem, unit: str) -> Problem:
    """The problem counted in ``unit``: a reader may say "line" for what turned out a JSON record."""
    return problem if problem.unit == unit else Problem(problem.line, problem.field, problem.message, unit)


def _sentence(text: str) -> str:
    """End ``text`` with exactly one full stop (messages may already end in '?' or '.')."""
    return text if text.endswith((".", "?", "!")) else text + "."


def _hash_id(group: str, question: str) -> str:
    """An id from the content, so it survives reordering and edits of other rows (resume works)."""
    return hashlib.sha1(f"{group}\x00{question}".encode("utf-8")).hexdigest()[:16]


def _question_key(group: str, question: str) -> bytes:
    """What duplicates are compared by: a 128-bit digest of the group and the normalised question
    (collisions are as unlikely as in git), a third of the two strings' memory on a big file."""
    return blake2b(f"{group}\x00{_norm_question(question)}".encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _norm_question(q: str) -> str:
    """The question as duplicates are compared: case and whitespace do not make a new question."""
    return " ".join(q.casefold().split())


def content_fingerprint(examples: Iterable[Example]) -> str:
    """sha256 over the canonical (id, question, answers, group) of the examples, in order; a row
    with an answer key, a system turn or a not-probed status adds those (they change results).

    The canonical form is one compact UTF-8 JSON array of ``[id, question, [answers...], group]``
    arrays: unambiguous (no separator can be forged by the text) and independent of how the source
    file was formatted.
    The text is hashed in pieces of ``_FINGERPRINT_CHUNK`` rows (the same bytes as one
    ``json.dumps`` of the whole list), so a million rows never become one string in memory.
    """
    sha = hashlib.sha256(b"[")
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    rows: list[list[Any]] = []
    first = True
    for ex in examples:
        row: list[Any] = [ex.id, ex.question, list(ex.answers), ex.group]
        if ex.keys or ex.system or ex.status != "probed":
            # only rows of the new shapes carry these, so fingerprints of entity data stay as they were
            row.append([list(ex.keys), ex.system, ex.status, ex.reason])
        rows.append(row)
        if len(rows) >= _FINGERPRINT_CHUNK:
            sha.update((dumps(rows)[1:-1] if first else "," + dumps(rows)[1:-1]).encode("utf-8"))
            first = False
            rows = []
    if rows:
        sha.update((dumps(rows)[1:-1] if first else "," + dumps(rows)[1:-1]).encode("utf-8"))
    sha.update(b"]")
    return sha.hexdigest()


def take_balanced(ds: Dataset, n: int) -> Dataset:
    """A copy of ``ds`` with at most ``n`` examples, taken round-robin over the groups in file order.

    Used by ``--limit`` and the demo, so a small probe still covers every group. The copy gets
    its own content fingerprint: a probe of the subset is a different probe from one of the whole.
    """
    if n is None or n >= len(ds.examples):
        return ds
    if n < 1:
        raise DatasetError(f"The number of questions to take must be at least 1 (got {n}).")
    queues = [list(reversed(exs)) for exs in ds.groups().values()]
    picked: list[Example] = []
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop())
    order = {ex.id: i for i, ex in enumerate(ds.examples)}
    picked.sort(key=lambda ex: order[ex.id])
    return replace(ds, examples=picked, content_sha256=content_fingerprint(_in_file_order(picked, ds.unprobed)))
