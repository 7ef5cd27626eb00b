"""A run's folder on disk: adapters and the resume checkpoint, written so that a kill at any moment
leaves one complete copy, and read back so that a resumed run continues exactly.

Every folder is written under a temporary name, fsynced, then swapped in (``replace_dir``); a kill
during the swap leaves ``<name>.old``, which ``find_checkpoint`` still finds. A checkpoint holds the
adapter, the optimizer, the scheduler, torch's and Python's RNG states (and the fp16 loss scaler's)
and the loop's progress in ``state.json``, so the resumed run draws the very batches, learning
rates and dropout masks an uninterrupted run would have.

Run folder::

    adapter/             best adapter so far (peft, loadable with PeftModel.from_pretrained)
    final-adapter/       the adapter after the last step of a run that finished
    merged/              optional merged model (safetensors) of the run's result
    checkpoints/last/    adapter + optimizer.pt + scheduler.pt + rng.pt + state.json
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import SettingsError

CHECKPOINT_VERSION = 1
ADAPTER_INFO = "knowmix_adapter.json"


@dataclass(frozen=True)
class TrainingState:
    """The torch objects a checkpoint saves and a resume loads back, on ``device``; ``scaler`` is the
    fp16 loss scaler (None when not training in fp16)."""

    model: Any
    optimizer: Any
    scheduler: Any
    scaler: Any
    device: str


def replace_dir(tmp: Path, dest: Path) -> None:
    """Put the finished folder ``tmp`` at ``dest`` so that a kill at any point leaves one complete copy."""
    old = dest.with_name(dest.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def fsync_dir(path: Path) -> None:
    """Flush the folder's files to disk before the swap: a power cut must not leave an empty "complete" copy."""
    for f in path.iterdir():
        if f.is_file():
            try:
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            except OSError:
                pass


def find_checkpoint(run_dir: Path) -> Optional[Path]:
    """The last complete checkpoint of a run (a kill during the swap leaves ``last.old``)."""
    for name in ("last", "last.old"):
        path = Path(run_dir) / "checkpoints" / name
        if (path / "state.json").is_file():
            return path
    return None


def save_adapter(model: Any, dest: Path, info: dict) -> None:
    """The peft adapter at ``dest``, with ``info`` (which adapter, step, scores, base model) beside it."""
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    (tmp / ADAPTER_INFO).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    fsync_dir(tmp)
    replace_dir(tmp, dest)


def restore_adapter(model: Any, folder: Path, device: str) -> None:
    """Load a saved adapter's weights back into the model in memory (the best one, after training on)."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors"), device=str(device)))


def rng_state(device: str) -> dict:
    """torch's RNG state of this process (and its GPU's), as a checkpoint keeps it."""
    import torch

    rng = {"torch": torch.get_rng_state()}
    if device.startswith("cuda"):
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def write_checkpoint(
    run_dir: Path,
    trained: TrainingState,
    progress: dict,
    settings: dict,
    rank_rngs: Optional[list] = None,
) -> Path:
    """Save everything a resume needs in ``checkpoints/last``; ``progress`` is the loop's own state.

    Training on several processes, rank 0 writes the checkpoint (the adapter and optimizer are the same
    on every process) and ``rank_rngs`` holds every process's ``rng_state``, in rank order, so each
    draws its own dropout masks again after a resume."""
    import torch

    model, optimizer, scheduler, scaler, device = (
        trained.model,
        trained.optimizer,
        trained.scheduler,
        trained.scaler,
        trained.device,
    )
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    rng: dict[str, Any] = rng_state(device)
    if scaler is not None:
        rng["scaler"] = scaler.state_dict()
    if rank_rngs is not None and len(rank_rngs) > 1:
        rng["ranks"] = list(rank_rngs)
    torch.save(rng, tmp / "rng.pt")
    py_state = random.getstate()
    state = {
        "version": CHECKPOINT_VERSION,
        **progress,
        "python_random": [py_state[0], list(py_state[1]), py_state[2]],
        "settings": settings,
        "saved_at": time.time(),
    }
    (tmp / "state.json").write_text(json.dumps(state, default=str), encoding="utf-8")
    fsync_dir(tmp)
    dest = folder / "last"
    replace_dir(tmp, dest)
    return dest


def read_checkpoint(
    ckpt: Path,
    trained: TrainingState,
    *,
    n_train: int,
    steps_per_epoch: int,
    rank: int = 0,
) -> dict:
    """Load a checkpoint into the model, optimizer, scheduler and RNGs; returns its ``state.json``.
    ``rank``: which process's RNG state to take, when several processes trained.

    Refuses a checkpoint made for other data or batch settings: its step would point at other batches.
    """
    import torch
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    model, optimizer, scheduler, scaler, device = (
        trained.model,
        trained.optimizer,
        trained.scheduler,
        trained.scaler,
        trained.device,
    )
    state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    if state.get("n_train") != n_train or state.get("steps_per_epoch") != steps_per_epoch:
        raise SettingsError(
            "The run's checkpoint does not match its data or batch settings, so it cannot be resumed. Start a new run instead."
        )
    weights = load_file(str(ckpt / "adapter_model.safetensors"), device=str(device))
    set_peft_model_state_dict(model, weights)
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=device, weights_only=True))
    scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
    rng = torch.load(ckpt / "rng.pt", weights_only=True)
    mine = rng["ranks"][rank] if rank and rank < len(rng.get("ranks") or ()) else rng
    torch.set_rng_state(mine["torch"])
    if "cuda" in mine and device.startswith("cuda"):
        torch.cuda.set_rng_state(mine["cuda"], device)
    if "scaler" in rng and scaler is not None:
        scaler.load_state_dict(rng["scaler"])
    py = state["python_random"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    return state
