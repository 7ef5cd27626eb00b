"""Load a user's fine-tuning dataset into questions with gold answers.

KnowMix probes *single closed-book questions*: every probe-able row of the user's file becomes one
question, the list of accepted answers (aliases), its answer key and a group (the paper's "relation"; exemplars
for few-shot prompts are drawn from the same group). Users bring whatever their fine-tuning
tool expects, so this module accepts the common shapes and formats and says precisely what is
wrong with a row when it cannot use it.

Formats
    JSON Lines (``.jsonl``/``.ndjson``), a JSON array (``.json``; also ``{"data": [...]}``, an
    object whose single list value holds the records), CSV (``.csv``), TSV (``.tsv``/``.tab``)
    and Parquet (``.parquet``; needs pyarrow, imported only when such a file is opened). Other
    extensions are sniffed from the content. A ``.json`` file that is really JSON Lines, and a
    ``.jsonl`` file that is really one JSON document, are read as what they are.

Shapes (detected from the column names of the first records, case-insensitively)
    ``question-answer``   ``question`` + ``answers`` or ``answer`` (EntityQuestions)
    ``alpaca``            ``instruction`` (+ optional ``input``) + ``output``
    ``prompt-completion`` ``prompt`` + ``completion`` or ``response``
    ``openai-messages``   ``messages``: [{"role", "content"}, ...]
    ``sharegpt``          ``conversations``: [{"from": "human"|"gpt"|"system", "value"}, ...]
    ``custom``            a user mapping (``question=a,answer=b``) replaced the question/answer

    A ``relation``, ``group``, ``category`` or ``topic`` column (first found, in that order)
    gives the group, else every row is in group ``"all"``. An ``id``, ``_id`` or ``uid`` column
    gives the example id; otherwise the id is a hash of group and question, so it survives
    reordering and edits of other rows and a probe can resume.

Answers
    A list of aliases, or one string. In CSV/TSV files (question-answer and custom shapes only)
    a string cell may hold several aliases separated by ``|`` (``Paris|City of Light``) or a
    JSON list literal (``["Paris", "City of Light"]``); in JSON and Parquet files a string is
    always one alias, since those formats have real lists. Numbers become text (``1987`` ->
    ``"1987"``), surrounding whitespace is stripped, and None/NaN count as missing. A SQuAD-style
    ``{"text": [...]}`` or TriviaQA-style ``{"value", "aliases"}`` object is also understood.

Everything is read from one in-memory copy of the file bytes, which are hashed once
(``file_sha256``); ``content_sha256`` hashes the parsed examples, so re-formatting the file
(indentation, key order, CRLF) does not invalidate a probe, while any change of a question,
answer, group or id does.

Modules, one idea each
    ``types``    Example, Problem, Dataset, Preview and the names of formats, shapes and roles
    ``files``    the file's bytes: path checks, encoding, format detection, lines
    ``readers``  one reader per format, records or per-row problems in file order
    ``shapes``   shape detection, the column mapping and the chat role names
    ``rows``     row validation: one record into question, answers, group and id
    ``keys``     probe status and answer keys: which rows the probe can check (not a task, a
                 multi-turn chat, a long-form answer or no answer), and the short span a correct
                 answer must contain (the entity-shaped answer, a key column, or extracted)
    ``multi``    the one rule that calls a question multi-answer (two or more different true
                 answers, not aliases of one): ``is_multi_answer``, ``Example.multi_answer``
    ``loading``  ``load_dataset``, duplicates (merged answers listed) and ids, fingerprints,
                 ``take_balanced``
    ``preview``  ``read_preview`` for the import dialog

    Writing a planned answer back into the user's own shape belongs next to ``shapes``.
"""

from __future__ import annotations

from .keys import extract_key
from .loading import content_fingerprint, load_dataset, take_balanced
from .preview import read_preview
from .records import json_default
from .shapes import ASSISTANT_ROLES, parse_mapping
from .types import FORMATS, REASONS, ROLES, SHAPES, Dataset, Example, PathLike, Preview, Problem, reasons_text

__all__ = [
    "json_default",
    "Example",
    "Problem",
    "Dataset",
    "Preview",
    "FORMATS",
    "SHAPES",
    "ROLES",
    "ASSISTANT_ROLES",
    "PathLike",
    "parse_mapping",
    "load_dataset",
    "read_preview",
    "content_fingerprint",
    "take_balanced",
    "extract_key",
    "REASONS",
    "reasons_text",
]
