"""Training on several processes (data parallel), as started by torchrun (``knowmix train --processes N``).

torchrun (``python -m torch.distributed.run --standalone --nproc-per-node N``) starts N copies of the
worker and tells each its place through the environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``).
``Dist`` joins them in one process group, NCCL on GPUs (one GPU each) and gloo on the CPU, and
offers the few collectives the training loop needs. With one process (no torchrun) every method
is a no-op and nothing is imported, so the one-process loop is exactly what it was.

Why a manual all-reduce of the LoRA gradients rather than wrapping the model in DDP: the loss's
fast path (``core.train.loss``) calls the base model's decoder and output layer directly, not the
wrapped model's ``forward``, and DDP's reducer expects every backward to follow its own forward;
with gradient accumulation it would also all-reduce after every micro-batch unless each one runs
under ``no_sync``. Summing the trainable (LoRA) gradients once per optimizer step, after the
micro-batches, is one collective a step over a few MB (the adapter, not the model), gives exactly
the one-process sum, and works with either loss path. What DDP would add, overlapping the
reduction with the backward pass, matters little when the adapter is that small.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Optional, Sequence

from ..errors import SettingsError

# Rank 0 evaluates (dev exact match, train fit) while the others wait at a barrier; on a big model and a
# big dev set that can take long, far longer than the collectives' default timeouts (10-30 minutes).
COLLECTIVE_TIMEOUT = timedelta(hours=6)


# Set by the runner for the processes it starts under torchrun, and only for them: a RANK or WORLD_SIZE a cluster
# (SLURM, a notebook started by torchrun) left in the user's environment must not make a one-process run wait
# for peers that never come.
LAUNCHED_ENV = "KNOWMIX_TRAIN_DISTRIBUTED"


def _launched() -> bool:
    return os.environ.get(LAUNCHED_ENV) == "1"


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 when KnowMix did not start it under torchrun)."""
    return int(os.environ.get("RANK", "0") or 0) if _launched() else 0


def launched_world() -> int:
    """How many training processes torchrun started (1 when KnowMix did not start it under torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) if _launched() else 1


class Dist:
    """This process's place among the training processes, and the collectives the loop uses."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.started = False
        self.backend: Optional[str] = None

    @classmethod
    def from_env(cls) -> "Dist":
        local = int(os.environ.get("LOCAL_RANK", "0") or 0) if _launched() else 0
        return cls(launched_rank(), launched_world(), local)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.world > 1

    def start(self, device: str) -> str:
        """Join the process group; returns this process's device (``cuda:LOCAL_RANK`` on GPUs)."""
        if not self.several:
            return device
        import torch
        import torch.distributed as dist

        if not dist.is_available():
            raise SettingsError(
                "This torch build has no torch.distributed, so it cannot train on several processes. "
                "Train with --processes 1, or install a torch build with distributed support."
            )
        if device.startswith("cuda"):
            have = torch.cuda.device_count()
            if have < self.world:
                raise SettingsError(
                    f"Training on {self.world} processes on the GPU needs {self.world} GPUs, one each, but this machine "
                    f"shows {have}. Use --processes {max(1, have)}, or --device cpu."
                )
            device = f"cuda:{self.local_rank}"
            torch.cuda.set_device(self.local_rank)
            self.backend = "nccl"
        elif device == "cpu":
            self.backend = "gloo"
        else:
            raise SettingsError(
                f"Training on several processes needs CUDA GPUs or the CPU, not {device}. Use --processes 1 on this device."
            )
        if not dist.is_initialized():
            dist.init_process_group(backend=self.backend, timeout=COLLECTIVE_TIMEOUT)
            self.started = True
        pids = self.gather(os.getpid())
        if not self.is_main:
            self._follow_rank0(int(pids[0]))
        return device

    def _follow_rank0(self, pid: int) -> None:
        """End this process as soon as rank 0 is gone (an error only rank 0 met, a kill): rank 0 alone saves and
        reports, so there is nothing left to do, and a process waiting in an NCCL collective would otherwise
        wait for the collective timeout (hours) or torchrun's shutdown timeout before the run is reported."""
        import sys
        import threading
        import time

        def watch() -> None:
            while self.started:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    if self.started:
                        print(f"Training process {self.rank}: process 0 ({pid}) has ended; stopping too.", file=sys.stderr)
                        sys.stderr.flush()
                        os._exit(1)
                except OSError:
                    pass
                time.sleep(1.0)

        threading.Thread(target=watch, name="knowmix-rank0-watch", daemon=True).start()

    def close(self) -> None:
        if self.started:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.started = False

    # -------------------------------------------------------------- collectives (no-ops for one process)

    def sum_(self, tensors: Sequence[Any]) -> None:
        """All-reduce ``tensors`` in place (sum over the processes), one collective per dtype and device."""
        if not self.several or not tensors:
            return
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        groups: dict[tuple, list] = {}
        for t in tensors:
            groups.setdefault((t.dtype, t.device), []).append(t)
        for group in groups.values():
            flat = _flatten_dense_tensors(group)
            dist.all_reduce(flat)
            for t, reduced in zip(group, _unflatten_dense_tensors(flat, group)):
                t.copy_(reduced)

    def any(self, flag: bool, device: str) -> bool:
        """True on every process when it is true on any one (a cancel reaches one process or all of them)."""
        if not self.several:
            return flag
        import torch
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def decide(self, flag: bool) -> bool:
        """Rank 0's value of ``flag`` on every process (rank 0 evaluates, so rank 0 decides an early stop)."""
        if not self.several:
            return flag
        import torch.distributed as dist

        box = [flag]
        dist.broadcast_object_list(box, src=0)
        return bool(box[0])

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order, on every process."""
        if not self.several:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast_(self, tensors: Sequence[Any]) -> None:
        """Rank 0's values of ``tensors`` on every process (the adapter starts the same everywhere)."""
        if not self.several:
            return
        import torch.distributed as dist

        for t in tensors:
            dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        if self.several:
            import torch.distributed as dist

            dist.barrier(device_ids=[self.local_rank] if self.backend == "nccl" else None)
