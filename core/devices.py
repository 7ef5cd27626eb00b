"""Which accelerators torch can use on this machine, and which device a run asks for.

One home for GPU detection: the doctor, the Model and Train pages, the torch backend, training
and the backend checks all ask here, so "is there a GPU" has one answer (CUDA first, then Apple's
MPS, then the CPU) and one way of failing. torch is imported inside the functions: importing
this module is free, and the lite edition (no torch) gets a "not checked" answer instead of an
ImportError. Looking takes seconds (importing torch), so callers on a UI thread run
``detect_devices`` in a background job; the first answer is kept for the process
(``last_detected``), since GPUs do not come and go while KnowMix runs.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from typing import Any, Optional

from .errors import SettingsError
from .formats import format_gib

NO_TORCH_NOTE = "torch is not installed: no GPU support in this edition"


@dataclass(frozen=True)
class Gpu:
    """One CUDA GPU. ``free`` is filled only when asked for (it changes; the doctor shows it)."""

    index: int
    name: str
    memory: int  # total bytes
    free: Optional[int] = None
    free_error: Optional[str] = None


@dataclass(frozen=True)
class Devices:
    """What torch can run on here. ``checked`` is False without torch; ``error`` says why torch
    could not be asked (a broken install is what a bug report needs to show)."""

    checked: bool
    cuda: tuple[Gpu, ...] = ()
    mps: bool = False
    torch_cuda_build: Optional[str] = None
    error: Optional[str] = None
    note: str = ""

    @property
    def auto(self) -> str:
        """The device ``auto`` means: the first CUDA GPU, else MPS, else the CPU."""
        if self.cuda:
            return "cuda:0"
        return "mps" if self.mps else "cpu"


_lock = threading.Lock()
_last: Optional[Devices] = None


def torch_installed() -> bool:
    """Whether torch can be imported, without importing it (``find_spec`` reads no package code)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def detect_devices(*, free_memory: bool = False) -> Devices:
    """Look for CUDA GPUs and MPS; never raises. The answer without free memory is kept for the
    process; ``free_memory=True`` looks again, with each GPU's free memory now."""
    global _last
    if not free_memory and _last is not None:
        return _last
    if not torch_installed():
        found = Devices(checked=False, note=NO_TORCH_NOTE)
    else:
        try:
            found = _ask_torch(free_memory)
        except Exception as exc:  # noqa: BLE001 - a broken torch install: said, not raised
            found = Devices(checked=True, error=f"{type(exc).__name__}: {exc}")
    if not free_memory:
        with _lock:
            _last = found
    return found


def last_detected() -> Optional[Devices]:
    """What ``detect_devices`` found in this process, or None before it ran (then it needs a worker)."""
    return _last


def _ask_torch(free_memory: bool) -> Devices:
    """The one place that asks torch about devices (imports it: seconds the first time)."""
    import torch

    gpus: list[Gpu] = []
    if torch.cuda.is_available():
        gpus = [_gpu(torch, i, free_memory) for i in range(torch.cuda.device_count())]
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    return Devices(
        checked=True,
        cuda=tuple(gpus),
        mps=bool(mps is not None and mps.is_available()),
        torch_cuda_build=getattr(torch.version, "cuda", None),
    )


def _gpu(torch: Any, index: int, free_memory: bool) -> Gpu:
    props = torch.cuda.get_device_properties(index)
    if not free_memory:
        return Gpu(index, str(props.name), int(props.total_memory))
    try:
        return Gpu(index, str(props.name), int(props.total_memory), free=cuda_free_memory(index))
    except Exception as exc:  # noqa: BLE001 - shown next to the GPU
        return Gpu(index, str(props.name), int(props.total_memory), free_error=f"{type(exc).__name__}: {exc}")


def cuda_free_memory(device: str | int = "cuda") -> int:
    """Free bytes on one CUDA GPU now (``"cuda:1"``, ``1``; plain ``"cuda"``: the current one): the
    one place that asks, for the doctor's list and for the memory check before a model loads
    (``core.models.available_memory``). Raises what torch raises when it cannot tell."""
    import torch

    if isinstance(device, int):
        index = device
    else:
        _kind, _colon, number = device.partition(":")
        index = int(number) if number else torch.cuda.current_device()
    free, _total = torch.cuda.mem_get_info(index)
    return int(free)


# --------------------------------------------------------------------------- a run's device


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an explicit choice is checked against
    what is here, so a typo or a missing GPU is a ``SettingsError`` before a model loads."""
    choice = (device or "auto").strip().lower()
    if choice == "cpu":
        return "cpu"
    found = detect_devices()
    if found.error:
        raise SettingsError(f"torch could not look for a GPU here ({found.error}). Use device 'cpu', or reinstall torch.")
    if choice == "auto":
        return found.auto
    if choice.startswith("cuda"):
        return _resolve_cuda(device, choice, found)
    if choice == "mps":
        if not found.mps:
            raise SettingsError("Device 'mps' asks for an Apple GPU, but torch cannot use one here. Use 'auto' or 'cpu'.")
        return "mps"
    raise SettingsError(f"Device '{device}' is not a device name; use auto, cuda, cuda:0, mps or cpu.")


def _resolve_cuda(device: str, choice: str, found: Devices) -> str:
    if not found.cuda:
        raise SettingsError(
            f"Device '{device}' asks for an NVIDIA GPU, but torch sees no CUDA GPU here. Use device 'auto' or 'cpu', "
            "or install a CUDA build of torch."
        )
    index = 0
    if ":" in choice:
        try:
            index = int(choice.split(":", 1)[1])
        except ValueError:
            raise SettingsError(f"Device '{device}' is not a device name; use cuda, cuda:0, cuda:1, mps or cpu.") from None
    if not 0 <= index < len(found.cuda):
        raise SettingsError(f"Device '{device}' does not exist: this machine has {len(found.cuda)} CUDA GPU(s), numbered from 0.")
    return f"cuda:{index}"


def describe_device(device: str) -> str:
    """What the UI shows: ``cuda:0 (NVIDIA H100 80GB HBM3, 79 GiB)``, ``mps (Apple GPU)`` or ``cpu``."""
    if device.startswith("cuda"):
        try:
            index = int(device.split(":", 1)[1]) if ":" in device else 0
        except ValueError:
            return device
        gpus = detect_devices().cuda
        if 0 <= index < len(gpus):
            return f"cuda:{index} ({gpus[index].name}, {format_gib(gpus[index].memory, 0)})"
        return f"cuda:{index}"
    if device == "mps":
        return "mps (Apple GPU)"
    return device


__all__ = [
    "Gpu",
    "Devices",
    "NO_TORCH_NOTE",
    "torch_installed",
    "detect_devices",
    "last_detected",
    "resolve_device",
    "describe_device",
]
