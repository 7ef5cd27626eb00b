"""PyInstaller runtime hook: load ggml's CPU backends from the bundle, and only from there.

With ``GGML_BACKEND_DL=ON GGML_CPU_ALL_VARIANTS=ON`` llama.cpp ships one CPU backend per x86-64
level (``libggml-cpu-haswell.so``, ...) and picks the best one for this CPU when it loads. By
default ggml looks for them next to the executable and in the current directory; loading them
here from the bundle's ``llama_cpp/lib`` first means the current directory is never searched.
A build without variants (macOS, ``--portable-fallback``) has no such files and is left alone.
"""


def _load_ggml_backends() -> None:
    import ctypes
    import os
    import sys

    lib = os.path.join(getattr(sys, "_MEIPASS", ""), "llama_cpp", "lib")
    if not os.path.isdir(lib):
        return
    names = os.listdir(lib)
    prefix = "ggml-cpu-" if sys.platform == "win32" else "libggml-cpu-"
    if not any(n.startswith(prefix) for n in names):
        return
    core = {"win32": "ggml.dll", "darwin": "libggml.dylib"}.get(sys.platform, "libggml.so")
    try:
        ggml = ctypes.CDLL(os.path.join(lib, core), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
        ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
        # quiet while loading ("load_backend: loaded CPU backend from ..." on every start), then
        # back to ggml's default logger (llama_cpp installs its own when it loads)
        callback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
        quiet = callback(lambda level, text, data: None)
        ggml.ggml_log_set.argtypes = [callback, ctypes.c_void_p]
        ggml.ggml_log_set(quiet, None)
        try:
            ggml.ggml_backend_load_all_from_path(os.fsencode(lib))
        finally:
            ggml.ggml_log_set(callback(), None)
    except (OSError, AttributeError) as exc:  # the app still starts; probing will say what is wrong
        print(f"knowmix: could not load llama.cpp's CPU backends: {exc}", file=sys.stderr)


_load_ggml_backends()
