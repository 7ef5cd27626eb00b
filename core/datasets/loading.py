"""Loading a dataset file into examples: parse, resolve the shape, validate every row, and
refuse to go on quietly when rows are broken.

The file is read once; the same bytes are hashed (``file_sha256``) and parsed. ``content_sha256``
hashes the parsed examples instead, so re-formatting the file (indentation, key order, CRLF) does
not invalidate a probe, while any change of a question, answer, group or id does.
"""

from __future__ import annotations

import gc
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Optional

from ..errors import DatasetError
from ..scoring.text import normalize_answer
from .files import check_path, read_bytes, resolve_format
from .keys import classify
from .readers import Item, columns_of, parse_records
from .rows import Extractor, RowProblem
from .shapes import resolve_shape, validate_mapping
from .types import NOT_PROBED, REASONS, Dataset, Example, PathLike, Problem

_SKIP_HINT = "To go on, fix the file or choose to skip invalid rows (--skip-invalid)."


def load_dataset(
    path: PathLike,
    *,
    mapping: Optional[dict[str, str]] = None,
    skip_invalid: bool = False,
    fmt: Optional[str] = None,
    max_problems: int = 1000,
    key_overrides: Optional[dict[int, str]] = None,
) -> Dataset:
    """Read a fine-tuning dataset file into examples.

    The file is read once into memory; the same bytes are hashed and parsed.

    Every well-formed row loads. One the probe cannot check (a multi-turn conversation, no
    answer, a task rather than a fact, a long-form answer; see ``keys.classify``) is kept in
    ``Dataset.unprobed`` with status NOT_PROBED and a reason, so the plan keeps it and the export
    writes it back; the others are ``Dataset.examples``, each with its answer key (``keys``,
    ``key_source``). ``key_overrides`` maps a row's line (as in ``Example.line``) to a key the
    user edited in the preview; it wins over the key column and the extracted key.

    Rows that cannot be used (bad JSON, not an object, non-UTF-8 bytes, a missing or empty
    question, a value of the wrong kind, a repeated explicit id) are problems. By
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
    """
    # Parsing allocates hundreds of thousands of small dicts and lists that all stay alive; the
    # cyclic GC would rescan them again and again (about a third of the load time) for nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(path, mapping, skip_invalid, fmt, max_problems, key_overrides or {})
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
) -> Dataset:
    """``load_dataset`` without the GC switch: parse, resolve the shape, collect, check."""
    p = check_path(path)
    data = read_bytes(p)
    file_sha = hashlib.sha256(data).hexdigest()
    fmt = resolve_format(p, data, fmt)
    user_mapping = validate_mapping(mapping)

    items, columns, fmt = parse_records(data, fmt, p.name)
    del data
    unit = "record" if fmt in ("json", "parquet") else "line"
    _require_a_record(items, p, unit)
    if fmt not in ("csv", "tsv") and any(c not in columns for c in user_mapping.values()):
        # The user named a column the first records lack; it may only appear in later ones.
        columns = columns_of(items, None)
    shape, roles, error = resolve_shape(columns, user_mapping, p.name)
    if error:
        raise DatasetError(error)

    rows = _Rows(unit, roles.get("id"), max_problems, key_overrides)
    rows.collect(items, Extractor(shape, roles, fmt))
    rows.check(p, skip_invalid)
    examples, unprobed = rows.examples()
    return Dataset(
        path=str(p),
        format=fmt,
        shape=shape,
        mapping=roles,
        examples=examples,
        file_sha256=file_sha,
        content_sha256=content_fingerprint(_in_file_order(examples, unprobed)),
        duplicates=rows.duplicates,
        merged_duplicates=rows.merged,
        problems=rows.problems,
        problem_count=rows.problem_count,
        unprobed=unprobed,
    )


def _in_file_order(examples: list[Example], unprobed: list[Example]) -> list[Example]:
    """Probed and not-probed rows together, in file order (what the fingerprint covers)."""
    if not unprobed:
        return examples
    return sorted([*examples, *unprobed], key=lambda ex: ex.line)


def _require_a_record(items: list[Item], p: Path, unit: str) -> None:
    """Fail when no row parsed at all: the first problem says more than "no columns found"."""
    if any(isinstance(rec, dict) for _, rec in items):
        return
    bad = [rec for _, rec in items if isinstance(rec, Problem)]
    more = len(bad) - 1
    tail = f" (and {more} more problem{'s' if more != 1 else ''})" if more > 0 else ""
    raise DatasetError(
        f"{p.name}: no usable rows. {_sentence(_relabel(bad[0], unit).describe(p) + tail)} Fix the file and try again."
    )


class _Rows:
    """The examples being collected, with the duplicates and problems met on the way.

    Rows stay mutable lists ``[id, question, answers, group, line, raw, system, keys,
    key_source, reason]`` until the end, because a later duplicate may add aliases (and their
    keys) to an earlier row. Only probed rows are merged as duplicates; a not-probed row is kept
    as it is (two chats may share a first question and differ later), unless it repeats an
    earlier not-probed row exactly.
    """

    def __init__(self, unit: str, id_col: Optional[str], max_problems: int, key_overrides: dict[int, str]) -> None:
        self.unit = unit
        self.id_col = id_col
        self.max_problems = max(1, max_problems)
        self.key_overrides = key_overrides
        self.rows: list[list[Any]] = []
        self.by_question: dict[tuple[str, str], int] = {}
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

    def collect(self, items: list[Item], extract: Extractor) -> None:
        """Validate every item in file order; one loop with local names, as it runs per row."""
        unit, rows, by_question, id_lines = self.unit, self.rows, self.by_question, self.id_lines
        overrides = self.key_overrides
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
            key = (group, _norm_question(question))
            first = by_question.get(key)
            if first is not None:
                self._merge_duplicate(rows[first], line, answers, keys, key_source)
                continue
            ex_id = ident if ident is not None else _hash_id(group, question)
            seen_line = id_lines.get(ex_id)
            if seen_line is not None:
                self._repeated_id(line, ex_id, seen_line, explicit=ident is not None)
                continue
            id_lines[ex_id] = line
            by_question[key] = len(rows)
            rows.append([ex_id, question, list(answers), group, line, rec, row.system, list(keys), key_source, ""])

    def _add_unprobed(self, line: int, rec: dict, row: Any, reason: str) -> None:
        """Keep a row the probe cannot check; only an exact repeat of an earlier one is a duplicate."""
        record = json.dumps(rec, ensure_ascii=False, sort_keys=True, default=str)
        first = self.by_record.get(record)
        if first is not None:
            self.duplicates.append((line, self.rows[first][4]))
            return
        ex_id = row.ident
        if ex_id is None:
            ex_id = _hash_id(row.group, row.question)
            if ex_id in self.id_lines:  # e.g. two chats with the same first question
                ex_id = _hash_id(row.group, record)
        seen_line = self.id_lines.get(ex_id)
        if seen_line is not None:
            self._repeated_id(line, ex_id, seen_line, explicit=row.ident is not None)
            return
        self.id_lines[ex_id] = line
        self.by_record[record] = len(self.rows)
        self.rows.append([ex_id, row.question, list(row.answers), row.group, line, rec, row.system, [], "answer", reason])

    def _merge_duplicate(
        self, row: list[Any], line: int, answers: tuple[str, ...], keys: tuple[str, ...], key_source: str
    ) -> None:
        """Both rows state accepted answers to the same question: keep the first, add new aliases
        (and, when either row has keys, the new row's keys)."""
        self.duplicates.append((line, row[4]))
        known = row[2]
        seen = {normalize_answer(a) for a in known}
        if any(normalize_answer(a) not in seen for a in answers):
            self.merged.append((line, row[4]))
        if row[8] == "answer" and key_source != "answer":
            row[7] = list(known)  # the first row's answers are its keys
            row[8] = key_source
        for a in answers:
            if a not in known:
                known.append(a)
        if row[8] != "answer":
            mine = row[7]
            for k in keys or answers:
                if k not in mine:
                    mine.append(k)

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
        if not any(not r[9] for r in self.rows):
            counts: dict[str, int] = {}
            for r in self.rows:
                counts[r[9]] = counts.get(r[9], 0) + 1
            why = ", ".join(f"{n} {REASONS[r].split(' (')[0]}" for r, n in counts.items())
            raise DatasetError(
                f"{p.name}: nothing to probe. All {len(self.rows)} rows load, but none is a factual question "
                f"with a short answer ({why}). KnowMix checks what a model already knows from such questions; "
                f"if the answers hold a short fact, name the column that holds it (--map key=COLUMN), or check "
                f"the column mapping."
            )

    def examples(self) -> tuple[list[Example], list[Example]]:
        """The probed and the not-probed rows, frozen now that no duplicate can add aliases."""
        probed: list[Example] = []
        unprobed: list[Example] = []
        for r in self.rows:
            if r[9]:
                unprobed.append(Example(r[0], r[1], tuple(r[2]), r[3], r[4], r[5], (), "answer", r[6], NOT_PROBED, r[9]))
            elif r[6] or r[8] != "answer":
                probed.append(Example(r[0], r[1], tuple(r[2]), r[3], r[4], r[5], tuple(r[7]), r[8], r[6]))
            else:
                probed.append(Example(r[0], r[1], tuple(r[2]), r[3], r[4], r[5]))
        return probed, unprobed


def _relabel(problem: Problem, unit: str) -> Problem:
    """The problem counted in ``unit``: a reader may say "line" for what turned out a JSON record."""
    return problem if problem.unit == unit else Problem(problem.line, problem.field, problem.message, unit)


def _sentence(text: str) -> str:
    """End ``text`` with exactly one full stop (messages may already end in '?' or '.')."""
    return text if text.endswith((".", "?", "!")) else text + "."


def _hash_id(group: str, question: str) -> str:
    """An id from the content, so it survives reordering and edits of other rows (resume works)."""
    return hashlib.sha1(f"{group}\x00{question}".encode("utf-8")).hexdigest()[:16]


def _norm_question(q: str) -> str:
    """The question as duplicates are compared: case and whitespace do not make a new question."""
    return " ".join(q.casefold().split())


def content_fingerprint(examples: Iterable[Example]) -> str:
    """sha256 over the canonical (id, question, answers, group) of the examples, in order; a row
    with an answer key, a system turn or a not-probed status adds those (they change results).

    The canonical form is one compact UTF-8 JSON array of ``[id, question, [answers...], group]``
    arrays: unambiguous (no separator can be forged by the text), independent of how the source
    file was formatted, and encoded in a single C-level call.
    """
    rows: list[list[Any]] = []
    for ex in examples:
        row: list[Any] = [ex.id, ex.question, list(ex.answers), ex.group]
        if ex.keys or ex.system or ex.status != "probed":
            # only rows of the new shapes carry these, so fingerprints of entity data stay as they were
            row.append([list(ex.keys), ex.system, ex.status, ex.reason])
        rows.append(row)
    text = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
