"""A probe run through a server, session by session (issue 20, item 8).

The server's start-up check of seed and top_k (``core.backends.server``) can come out differently
from one session to the next on the same server (llama.cpp's cache state). It used to be part of
the run's identity, so a flip silently started a new run instead of resuming. Now the run resumes
and its note records each session's check ("session 2: the server ignored seed"), with the
not-comparable words while any session's samples came from a server that ignored them.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

_SESSION = re.compile(r"^session (\d+): ")


def session_lines(note: str) -> list[str]:
    """The "session N: …" lines of a run's note, in order."""
    return [line for line in (note or "").splitlines() if _SESSION.match(line)]


def session_note(previous_note: str, extra: Mapping[str, Any]) -> str:
    """The run's note for a new session: the earlier sessions' lines, this session's seed check and,
    when any session's server ignored seed or top_k, the not-comparable words. A backend with no
    seed check (not a server) gets its ``not_comparable`` words alone, as before."""
    check = extra.get("seed_check")
    if not isinstance(check, Mapping):
        return str(extra.get("not_comparable", ""))
    lines = session_lines(previous_note)
    ignored = [name for name in ("seed", "top_k") if not check.get(name, True)]
    said = f"the server ignored {' and '.join(ignored)}" if ignored else "the server honoured seed and top_k"
    lines.append(f"session {len(lines) + 1}: {said}")
    comparable_words = str(extra.get("not_comparable", "")) or next(
        (line for line in (previous_note or "").splitlines() if line.startswith("NOT COMPARABLE")), ""
    )
    if any("ignored" in line for line in lines) and comparable_words:
        lines.append(comparable_words)
    return "\n".join(lines)


def with_sessions(note: str, message: str) -> str:
    """A failure's message under the run's session lines (so a failed session keeps the record)."""
    return "\n".join([*session_lines(note), message]) if session_lines(note) else message
