"""The import contract of ``core`` (docs/ARCHITECTURE.md, "Layers").

``core`` is headless and cheap to import: it never imports Qt or the ``gui`` package, and the
heavy model libraries (torch, transformers, llama_cpp, peft) are imported only when a backend is
first used. Importing ``core`` also forces the Hugging Face libraries offline, whatever the
user's shell says. Each check runs in a fresh interpreter, because this test process may already
have imported any of these modules.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from core.offline import OFFLINE_SWITCHES

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "core"

FORBIDDEN = ["PySide6", "gui", "torch", "transformers", "llama_cpp", "peft"]


def _core_modules() -> list[str]:
    """Every module of core, found on disk, so a new module is covered without editing this test. Even the
    backends and the training loop import their model library inside functions, when first used."""
    names = []
    for path in sorted(CORE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.endswith("__main__"):
            names.append(name)
    return names


CORE_MODULES = _core_modules()


def test_the_contract_covers_plan_train_report_and_the_store() -> None:
    for name in (
        "core.plan",
        "core.train",
        "core.train.runs",
        "core.train.runner",
        "core.report",
        "core.store",
        "core.datasets",
        "core.cli",
        "core.llama_cpu",
        "core.processes",
    ):
        assert name in CORE_MODULES, name


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    full_env["PYTHONPATH"] = str(REPO) + (os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=120)


def test_importing_core_loads_no_gui_and_no_heavy_model_library() -> None:
    code = (
        "import json, sys\n"
        f"import {', '.join(CORE_MODULES)}\n"
        f"forbidden = {FORBIDDEN!r}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in forbidden)\n"
        "print(json.dumps(loaded))\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing core pulled in: {loaded}"


def test_importing_core_forces_hugging_face_offline_even_if_the_shell_says_online() -> None:
    hostile = {key: "0" for key in OFFLINE_SWITCHES}
    hostile["HF_HUB_OFFLINE"] = "0"
    hostile["TRANSFORMERS_OFFLINE"] = "0"
    hostile["TOKENIZERS_PARALLELISM"] = "true"
    code = (
        "import json, os\n"
        "before = os.environ.get('HF_HUB_OFFLINE')\n"
        "import core\n"
        "from core.offline import OFFLINE_SWITCHES, offline_status\n"
        "print(json.dumps({'before': before, 'env': {k: os.environ.get(k) for k in OFFLINE_SWITCHES},"
        " 'status': offline_status()}))\n"
    )
    proc = run_python(code, env=hostile)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"] == "0"  # the parent really asked to be online
    assert out["env"] == OFFLINE_SWITCHES
    assert all(out["status"].values())


def test_offline_switches_cover_hub_and_transformers() -> None:
    assert OFFLINE_SWITCHES["HF_HUB_OFFLINE"] == "1"
    assert OFFLINE_SWITCHES["TRANSFORMERS_OFFLINE"] == "1"


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call):
            # importlib.import_module("PySide6...") / __import__("gui") with a literal name
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                value = node.args[0].value
                if isinstance(value, str) and not value.startswith("."):
                    roots.add(value.split(".")[0])
    return roots


def test_no_core_file_imports_qt_or_gui() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert files, "core/ has no Python files?"
    offenders = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        bad = _imported_roots(tree) & {"PySide6", "PyQt5", "PyQt6", "PySide2", "gui"}
        if bad:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert not offenders, "core must not import Qt or gui:\n" + "\n".join(offenders)


def test_static_check_catches_a_qt_import() -> None:
    """The checker above is only useful if it would notice the imports it forbids."""
    for src in (
        "import PySide6.QtCore",
        "from PySide6 import QtWidgets",
        "from gui.main import App",
        "def f():\n    import gui\n",
        "import importlib\nimportlib.import_module('PySide6.QtGui')",
    ):
        assert _imported_roots(ast.parse(src)) & {"PySide6", "gui"}, src
    assert not _imported_roots(ast.parse("from .gui_helpers import x\nimport guidance")) & {"PySide6", "gui"}


def test_only_gui_qt_imports_qt_or_pyqtgraph() -> None:
    """Every Qt name in the app comes from ``gui/qt.py`` (one place pins the binding and pyqtgraph's
    choice of it); the app's pages never import torch at module level either."""
    for path in sorted((REPO / "gui").rglob("*.py")):
        roots = _imported_roots(ast.parse(path.read_text(encoding="utf-8")))
        if path.name != "qt.py":
            assert not roots & {"PySide6", "PyQt5", "PyQt6", "PySide2", "pyqtgraph"}, path
    code = (
        "import sys\n"
        "import gui.window, gui.pages.train, gui.pages.breakdown\n"
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'llama_cpp') if m in sys.modules))\n"
    )
    proc = run_python(code, env={"QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
