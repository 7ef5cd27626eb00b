"""Is this computer busy with other programs? Then a time estimate measured now says so.

A rate measured while other programs use the CPU holds only as long as they do: the user should
know why a probe or a training run is slower than usual, and that its "time left" may change. The
test is the operating system's one-minute load average (the number of threads running or
waiting for a core) minus the threads the job itself keeps busy: when what is left is at least
half the cores (and at least one), other programs are using the CPU. It needs no extra package;
where there is no load average (Windows), it cannot tell and says nothing.
"""

from __future__ import annotations

import os
import re
from typing import Optional

BUSY_SHARE = 0.5  # other programs' load, as a share of the cores, from which the estimate says so


def other_load(own_threads: float) -> Optional[tuple[float, int]]:
    """(the load other programs put on the CPU, the number of cores), or None where there is no load average."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows; a system that does not give it
        return None
    return max(0.0, load - max(0.0, own_threads)), os.cpu_count() or 1


def busy_cpu_note(own_threads: float = 0.0) -> Optional[str]:
    """A short sentence when other programs are using the CPU, else None.

    ``own_threads`` is how many cores the job itself keeps busy (its compute threads), so that a
    job alone on the machine is not taken for another program. Shown next to a time estimate.
    """
    measured = other_load(own_threads)
    if measured is None:
        return None
    others, cores = measured
    if others < max(1.0, BUSY_SHARE * cores):
        return None
    return f"other programs are using the CPU (a load of {others:.1f} on {cores} cores besides this job), so this may change"


def worker_threads(device: str, threads: Optional[int]) -> float:
    """The cores a training worker keeps busy: its torch threads on the CPU, about one while a GPU computes."""
    return float(threads or 1) if str(device).startswith("cpu") else 1.0


def backend_threads(device: str, extra: Optional[dict] = None) -> Optional[float]:
    """The cores a loaded model keeps busy while it answers (the probe's and the check's own load):
    llama.cpp's threads ("cpu (4 threads)"), torch's CPU threads, about one on a GPU; None when
    unknown (a server, a test's backend), and then nothing is said about other programs."""
    device = str(device or "")
    if device.startswith(("cuda", "mps")):
        return 1.0
    cpu_threads = (extra or {}).get("cpu_threads")
    if device.startswith("cpu") and cpu_threads:
        return float(cpu_threads)
    found = re.search(r"cpu \((\d+) threads?\)", device)
    return float(found.group(1)) if found else None
