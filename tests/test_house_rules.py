"""``make check``'s house rules fail when a rule is broken and pass on the tree (issue 22).

The size rules (``tools/house_rules.py``) and the import floors (import-linter's contracts in
``pyproject.toml``) are each run as ``make check`` runs them, in a child process, on a copy of the
tree with one rule broken, so each test shows that the check would catch it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "house_rules.py"
BIN = Path(sys.executable).parent


def house_rules(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=120)


def small_tree(tmp_path: Path) -> Path:
    for package in ("core", "gui"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text('"""A package."""\n')
    return tmp_path


def test_house_rules_pass_on_the_tree() -> None:
    proc = house_rules(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_601_line_module_fails_naming_the_file_and_its_length(tmp_path: Path) -> None:
    root = small_tree(tmp_path)
    (root / "core" / "fine.py").write_text("x = 1\n" * 600)
    (root / "gui" / "big.py").write_text("x = 1\n" * 601)
    proc = house_rules(root)
    assert proc.returncode == 1
    assert "gui/big.py: 601 lines" in proc.stdout
    assert "fine.py" not in proc.stdout


def test_a_nine_parameter_function_fails_naming_file_line_and_name(tmp_path: Path) -> None:
    root = small_tree(tmp_path)
    (root / "core" / "wide.py").write_text(
        "from dataclasses import dataclass\n"
        "\n"
        "def eight(a, b, c, d, e, f, g, *, h): ...\n"
        "class C:\n"
        "    def method(self, a, b, c, d, e, f, g, h): ...\n"
        "def nine(a, b, c, d, e, f, g, h, **more): ...\n"
        "@dataclass\n"
        "class Many:\n" + "".join(f"    f{i}: int = 0\n" for i in range(10))  # its generated constructor takes ten: allowed
    )
    proc = house_rules(root)
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines() == ["core/wide.py:6: nine takes 9 parameters (at most 8): gather them in a dataclass"]


def test_the_allowlist_is_empty_now_that_the_splits_have_landed() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import house_rules as rules
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert rules.ALLOWED == frozenset()


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    lint = BIN / "lint-imports"
    if not lint.exists():
        pytest.skip("import-linter is not installed in this environment")
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([str(lint), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def copied_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("core", "gui"):
        shutil.copytree(REPO / package, root / package, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("core/store/runs.py", "import core.train.runs  # noqa\n", "core's floors"),
        ("core/plan/build.py", "import core.train.runs  # noqa\n", "core's floors"),
        ("core/plan/settings.py", "import core.plan.types  # noqa\n", "no circle"),
        ("gui/pages/export.py", "import core.store.results  # noqa\n", "public faces"),
    ],
)
def test_an_import_that_breaks_a_floor_fails_lint_imports(tmp_path: Path, module: str, line: str, contract: str) -> None:
    root = copied_tree(tmp_path)
    kept = lint_imports(root)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    path = root / module
    path.write_text(path.read_text(encoding="utf-8") + line, encoding="utf-8")
    broken = lint_imports(root)
    assert broken.returncode != 0
    assert contract in broken.stdout and "BROKEN" in broken.stdout, broken.stdout
