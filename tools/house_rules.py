"""The house rules that lint cannot see, checked by ``make check``: size of modules and of signatures.

A rule that nothing checks drifts: the house issue split the big modules once, and three features
later five were over 600 lines again. This script fails, naming each offender, when

- a module in ``core/`` or ``gui/`` is longer than ``MAX_LINES`` (600) lines: make a new small
  module named after what it holds;
- a function or method takes more than ``MAX_PARAMS`` (8) parameters (``self``/``cls`` not
  counted, ``*args``/``**kwargs`` counted): gather them in a dataclass. Dataclass constructors are
  generated, not written, so they never appear here.

Usage: ``python tools/house_rules.py [ROOT]`` (ROOT defaults to the repository); exit status 1 and
one line per offence (``path: N lines`` or ``path:line: name takes N parameters``) when a rule is
broken, 0 and one line of counts otherwise.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

MAX_LINES = 600
MAX_PARAMS = 8
PACKAGES = ("core", "gui")

# Modules allowed to break the rules while they are split on another branch; empty since the probe
# became the package core/probe/ and the charts and the Train step's page were split (issue 22).
ALLOWED: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Offence:
    """One broken rule, as the line the check prints."""

    path: str
    line: int  # 0: the whole file
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text}" if self.line else f"{self.path}: {self.text}"


def parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Parameters a caller can pass: positional, keyword-only, ``*args`` and ``**kwargs``, less ``self``/``cls``."""
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names) + (args.vararg is not None) + (args.kwarg is not None)


def check_file(path: Path, shown: str) -> list[Offence]:
    """The offences of one Python file; ``shown`` is the name the report uses for it."""
    text = path.read_text(encoding="utf-8")
    found = []
    n_lines = len(text.splitlines())
    if n_lines > MAX_LINES:
        found.append(
            Offence(shown, 0, f"{n_lines} lines (at most {MAX_LINES}): split it into modules named after what they hold")
        )
    for node in ast.walk(ast.parse(text, filename=shown)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = parameter_count(node)
            if n > MAX_PARAMS:
                found.append(
                    Offence(
                        shown, node.lineno, f"{node.name} takes {n} parameters (at most {MAX_PARAMS}): gather them in a dataclass"
                    )
                )
    return found


def check_tree(root: Path, allowed: frozenset[str] = ALLOWED) -> list[Offence]:
    """Every offence under ``root``'s ``core/`` and ``gui/``, except in the files ``allowed`` names."""
    found: list[Offence] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            shown = path.relative_to(root).as_posix()
            if shown not in allowed:
                found.extend(check_file(path, shown))
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[1]
    found = check_tree(root)
    for offence in found:
        print(offence)
    if found:
        print(f"house rules: {len(found)} broken (docs/ARCHITECTURE.md, 'Layers')", file=sys.stderr)
        return 1
    print(
        f"house rules: every module in {' and '.join(PACKAGES)} is at most {MAX_LINES} lines, every function at most {MAX_PARAMS} parameters"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
