"""PyInstaller runtime hook: llama.cpp's CPU backend is loaded by KnowMix, never by ggml's own scan.

With ``GGML_BACKEND_DL=ON GGML_CPU_ALL_VARIANTS=ON`` llama.cpp ships one CPU backend per x86-64
level, and ggml picks one from CPUID alone: on a CPU that advertises AMX without the OS granting it,
it picked ``sapphirerapids`` and died with SIGILL. ``core.llama_cpu.ensure_backend_loaded`` (called
by the llama.cpp backend before it imports llama_cpp) instead loads the best variant whose
instruction sets the OS grants and that passed a one-token decode in a child process. This hook
only makes sure an inherited choice from another installation is not trusted blindly.
"""

import os
import sys

_variant = os.environ.get("KNOWMIX_GGML_VARIANT")
if _variant and not os.path.abspath(_variant).startswith(os.path.abspath(getattr(sys, "_MEIPASS", ""))):
    del os.environ["KNOWMIX_GGML_VARIANT"]  # a variant file of another bundle: choose again here
