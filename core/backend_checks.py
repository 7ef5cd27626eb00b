"""Does each model backend really run on this machine? The backend checks of ``knowmix doctor``.

A version number says a library is installed, not that it works: a llama.cpp build for a newer
CPU dies with SIGILL on the first decode, a broken torch install segfaults on its first matrix
product. So each backend does a little real work here, in a child process (see
``core.processes``), and the report says how that child ended, in words, with the fix to try:

* llama.cpp: a one-token decode of the built-in model (``core.llama_cpu.decode_check``), plus
  the CPU features that llama.cpp build uses and the CPU variant it loaded;
* torch: a forward pass of a tiny two-layer Llama built in memory with transformers (the model
  class KnowMix's torch backend and training use), on the device the torch backend would pick.

Run as a child (``python -m core.backend_checks torch``) this module does the torch work and
prints one JSON line; in a packaged app ``gui.entry`` dispatches ``-m core.backend_checks`` here.
Nothing in the parent imports torch, transformers or llama_cpp.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from .processes import child_command, child_env, describe_exit, signal_name

TORCH_TIMEOUT = 300.0  # importing torch + transformers on a busy 2-core machine takes tens of seconds
LLAMA_TIMEOUT = 180.0


@dataclass
class ChildRun:
    """How a check's child process ended, and what it printed."""

    returncode: Optional[int]  # None: it was still running at the timeout (and was then killed)
    seconds: float
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def signal_name(self) -> Optional[str]:
        return None if self.timed_out else signal_name(self.returncode)

    def describe(self, timeout: Optional[float] = None) -> str:
        """'was killed by SIGSEGV (segmentation fault)', 'ended with exit code 1', 'did not finish...'."""
        if self.timed_out:
            return f"did not finish within {timeout or self.seconds:.0f} s (stopped)"
        return describe_exit(self.returncode)

    def result(self) -> Optional[dict[str, Any]]:
        """The child's answer: the last line of its output that is a JSON object."""
        for line in reversed(self.stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    return value
        return None

    def stderr_tail(self, lines: int = 2, width: int = 300) -> str:
        """The last lines of the child's error output, on one line (for a crash report)."""
        tail = " | ".join(line.strip() for line in self.stderr.strip().splitlines()[-lines:] if line.strip())
        return tail[-width:]


def run_child(cmd: Sequence[str], *, timeout: float, env: Optional[Mapping[str, str]] = None) -> ChildRun:
    """Run ``cmd`` to its end and say how it ended; never raises.

    The child gets its own process group so that a timeout stops it and anything it started.
    A crash (a signal) is an answer here, not an error: that is what the checks are for."""
    start = time.monotonic()
    kwargs: dict[str, Any] = {"start_new_session": True} if os.name == "posix" else {}
    try:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            text=True,
            encoding="utf-8",
            errors="replace",
            **kwargs,
        )
    except OSError as exc:
        return ChildRun(
            returncode=None,
            seconds=time.monotonic() - start,
            stdout="",
            stderr=f"could not start {cmd[0]}: {exc}",
            timed_out=False,
        )
    try:
        out, err = proc.communicate(timeout=timeout)
        return ChildRun(proc.returncode, time.monotonic() - start, out, err)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return ChildRun(None, time.monotonic() - start, out or "", err or "", timed_out=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        proc.kill()


# --------------------------------------------------------------------------------------- torch


def _frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def torch_fix() -> str:
    if _frozen():
        return (
            "reinstall KnowMix (full edition), or probe with the llama.cpp backend "
            "(a .gguf model such as the built-in one; --backend llama.cpp)"
        )
    return (
        "reinstall torch (.venv/bin/pip install --force-reinstall torch), or probe with the llama.cpp backend "
        "(a .gguf model such as the built-in one; --backend llama.cpp)"
    )


def torch_report(run: ChildRun, timeout: float = TORCH_TIMEOUT) -> dict[str, Any]:
    """What the doctor says about a finished torch child: ok, or how it failed and what to do."""
    answer = run.result() or {}
    out: dict[str, Any] = {
        "status": "ok",
        "ok": False,
        "seconds": round(run.seconds, 2),
        "device": answer.get("device"),
        "dtype": answer.get("dtype"),
        "torch": answer.get("torch"),
        "transformers": answer.get("transformers"),
        "returncode": run.returncode,
        "signal": run.signal_name,
        "message": "",
        "fix": None,
    }
    if run.ok and answer.get("ok"):
        out["ok"] = True
        out["message"] = f"a tiny Llama forward pass on {answer.get('device')} took {run.seconds:.1f} s"
        return out
    if run.signal_name:
        out["status"] = "crashed"
        out["message"] = f"the torch check process {run.describe(timeout)}"
    elif run.timed_out:
        out["status"] = "timed out"
        out["message"] = f"the torch check process {run.describe(timeout)}"
    else:
        out["status"] = "failed"
        why = answer.get("error") or run.stderr_tail() or run.describe(timeout)
        out["message"] = f"the torch check failed: {why}"
    out["fix"] = torch_fix()
    return out


def torch_check(timeout: float = TORCH_TIMEOUT, *, installed: bool = True) -> dict[str, Any]:
    """A tiny Llama forward pass in a child process (see ``main``)."""
    if not installed:
        return {
            "status": "not installed",
            "ok": None,
            "seconds": None,
            "device": None,
            "returncode": None,
            "signal": None,
            "fix": None,
            "message": "torch is not installed (the lite edition): probing uses llama.cpp, training is not available",
        }
    run = run_child(child_command("core.backend_checks", "torch"), timeout=timeout, env=child_env())
    return torch_report(run, timeout)


def _torch_forward() -> dict[str, Any]:
    """The child's work: build a 2-layer Llama in memory and run one forward pass on the device the
    torch backend would use (CUDA, else MPS, else the CPU), in the dtype it would use there."""
    start = time.monotonic()
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    from .backends.torch_backend import resolve_dtype
    from .devices import resolve_device

    device = resolve_device("auto")
    dtype = resolve_dtype("auto", device)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    # transformers decorates PreTrainedModel.to with functools.wraps(nn.Module.to), which hides ``self`` from mypy.
    model = LlamaForCausalLM(config).to(device=device, dtype=getattr(torch, dtype)).eval()  # type: ignore[call-arg]
    ids = torch.tensor([[1, 5, 9, 17, 33, 65]], device=device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    finite = bool(torch.isfinite(logits.float()).all().item())
    shape = list(logits.shape)
    if shape != [1, ids.shape[1], config.vocab_size] or not finite:
        return {
            "ok": False,
            "device": device,
            "dtype": dtype,
            "error": f"the forward pass gave wrong output (shape {shape}, finite {finite})",
        }
    return {
        "ok": True,
        "device": device,
        "dtype": dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "seconds": round(time.monotonic() - start, 3),
    }


# ----------------------------------------------------------------------------------- llama.cpp

_ITEM = re.compile(r"^(?:(?P<section>[A-Za-z0-9_ ]+?)\s*:\s*)?(?P<name>[A-Za-z0-9_]+)\s*=\s*(?P<value>\S+)$")
# Entries of the CPU section that are build options, not instruction sets the CPU must have.
_NOT_ISA = {"LLAMAFILE", "OPENMP", "REPACK", "KLEIDIAI", "ACCELERATE", "BLAS", "AARCH64_REPACK"}


def system_info_features(system_info: Optional[str]) -> list[str]:
    """The instruction sets llama.cpp's CPU backend was built to use, from its system info:
    ``"CPU : SSE3 = 1 | AVX = 1 | AVX512 = 0 | OPENMP = 1 | CUDA : ARCHS = 890 |"`` ->
    ``["SSE3", "AVX"]``. A SIGILL means the CPU lacks one of these."""
    if not system_info:
        return []
    out: list[str] = []
    section = "CPU"
    for part in system_info.split("|"):
        m = _ITEM.match(part.strip())
        if not m:
            continue
        if m.group("section"):
            section = m.group("section").strip().upper()
        name = m.group("name")
        if section == "CPU" and m.group("value") == "1" and name not in _NOT_ISA and name not in out:
            out.append(name)
    return out


def llama_fix() -> str:
    if _frozen():
        return "reinstall KnowMix; meanwhile probe with the torch backend (--backend torch, full edition)"
    return (
        "rebuild llama.cpp with `make setup` (it picks a build this CPU can run), "
        "or probe with the torch backend (--backend torch)"
    )


def llama_check(timeout: float = LLAMA_TIMEOUT) -> dict[str, Any]:
    """A one-token decode of the built-in model in a child process (``core.llama_cpu``)."""
    try:
        from .llama_cpu import decode_check
    except ImportError as exc:
        return {
            "status": "not checked",
            "ok": None,
            "seconds": None,
            "returncode": None,
            "signal": None,
            "features": [],
            "system_info": None,
            "variant": None,
            "build": {},
            "fix": None,
            "message": f"this KnowMix cannot check llama.cpp ({type(exc).__name__}: {exc})",
        }
    try:
        check = decode_check(timeout=timeout)
    except Exception as exc:  # noqa: BLE001  (the doctor reports, it never fails)
        return {
            "status": "failed",
            "ok": False,
            "seconds": None,
            "returncode": None,
            "signal": None,
            "features": [],
            "system_info": None,
            "variant": None,
            "build": {},
            "fix": llama_fix(),
            "message": f"the llama.cpp check could not run: {type(exc).__name__}: {exc}",
        }
    message = check.message
    if check.ok:
        status = "ok"
    elif check.signal_name:
        status = "crashed"
        message = f"the llama.cpp check process {describe_exit(check.returncode)} during a one-token decode of the built-in model"
    elif check.returncode is None:
        status = "timed out"
        message = f"the llama.cpp check process {message}"
    else:
        status = "failed"
    try:
        from .llama_cpu import cpu_features

        cpu: dict[str, Any] = cpu_features()
    except Exception as exc:  # noqa: BLE001
        cpu = {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "status": status,
        "ok": bool(check.ok),
        "seconds": round(check.seconds, 2) if check.seconds is not None else None,
        "returncode": check.returncode,
        "signal": check.signal_name,
        "message": message,
        "features": system_info_features(check.system_info),
        "system_info": check.system_info,
        "variant": check.variant,
        "build": dict(check.build or {}),
        "cpu": cpu,
        "fix": None if check.ok else llama_fix(),
    }


# ------------------------------------------------------------------------------------- together


def collect(*, llama: bool = True, torch_installed: bool = True, llama_skip_reason: Optional[str] = None) -> dict[str, Any]:
    """Both checks, side by side (each is mostly waiting for its own child), as plain data."""
    results: dict[str, dict[str, Any]] = {}

    def run_llama() -> None:
        results["llama.cpp"] = llama_check()

    threads = []
    if llama:
        threads.append(threading.Thread(target=run_llama, name="knowmix-doctor-llama", daemon=True))
        threads[-1].start()
    else:
        results["llama.cpp"] = {
            "status": "not checked",
            "ok": None,
            "seconds": None,
            "returncode": None,
            "signal": None,
            "features": [],
            "system_info": None,
            "variant": None,
            "build": {},
            "fix": None,
            "message": llama_skip_reason or "not checked",
        }
    results["torch"] = torch_check(installed=torch_installed)
    for t in threads:
        t.join()
    return {"checked": True, "llama.cpp": results["llama.cpp"], "torch": results["torch"]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Child side: ``python -m core.backend_checks torch`` prints one JSON line and exits 0 when
    the forward pass worked, 1 when it raised (a native crash ends the process by its signal)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["torch"]:
        print("usage: python -m core.backend_checks torch", file=sys.stderr)
        return 2
    try:
        answer = _torch_forward()
    except Exception as exc:  # noqa: BLE001  (reported to the parent as data)
        answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(answer), flush=True)
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
