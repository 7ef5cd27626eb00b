"""Which llama.cpp CPU code this machine can really run, and a one-token decode that proves it.

Why this exists: ggml decides what CPU code to use from CPUID alone ("FIXME: this does not check
for OS support" in its x86 scorer). On a virtual machine whose CPU advertises AMX but whose OS does
not grant the AMX tile state, a ``-march=native`` build dies with SIGSEGV in
``ggml_backend_amx_mul_mat`` and the installers' runtime-dispatched build picks its
``sapphirerapids`` variant and dies with SIGILL. So:

* the developer set-up builds llama.cpp with ``GGML_NATIVE=OFF`` and the instruction sets this CPU
  *and* its OS support (``/proc/cpuinfo`` lists only what the kernel enabled), never AMX
  (``build_cmake_args``), then proves the build with ``decode_check`` in a child process and
  rebuilds the safe way (``safe_cmake_args``: AVX2) if that child crashes;
* a build with one CPU backend per x86-64 level (the installers) loads the variant chosen by
  ``choose_variant``: the best one whose instruction sets are usable here, tried in a child process
  first, falling back to the next one when it crashes; the choice is cached per machine.

Nothing here imports llama_cpp in the calling process except ``ensure_backend_loaded``, which the
llama.cpp backend calls right before it imports llama_cpp.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from .processes import child_command, child_env, describe_exit, signal_name

VARIANT_ENV = "KNOWMIX_GGML_VARIANT"  # the CPU variant file this process (and its children) must load
BUILD_INFO_FILE = "knowmix-build.json"  # written next to llama_cpp's libraries by the set-up

# ggml's x86 CPU variants (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS) and the instruction sets
# each needs, as /proc/cpuinfo names them. Order does not matter: the best usable one wins.
_HASWELL = ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2")
_AVX512 = (*_HASWELL, "avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")
_ZEN4 = (*_AVX512, "avx512vbmi", "avx512_vnni", "avx512_bf16")
VARIANTS: dict[str, tuple[str, ...]] = {
    "x64": (),
    "sse42": ("sse4_2",),
    "sandybridge": ("sse4_2", "avx"),
    "ivybridge": ("sse4_2", "avx", "f16c"),
    "piledriver": ("sse4_2", "avx", "f16c", "fma"),
    "haswell": _HASWELL,
    "skylakex": _AVX512,
    "cannonlake": (*_AVX512, "avx512vbmi"),
    "cascadelake": (*_AVX512, "avx512_vnni"),
    "icelake": (*_AVX512, "avx512vbmi", "avx512_vnni"),
    "cooperlake": (*_AVX512, "avx512_vnni", "avx512_bf16"),
    "zen4": _ZEN4,
    "alderlake": (*_HASWELL, "avx_vnni"),
    "sapphirerapids": (*_ZEN4, "amx_tile", "amx_int8"),
}

# The CMake switch of each instruction set for a GGML_NATIVE=OFF build.
_CMAKE_FLAGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GGML_SSE42", ("sse4_2",)),
    ("GGML_AVX", ("avx",)),
    ("GGML_F16C", ("f16c",)),
    ("GGML_FMA", ("fma",)),
    ("GGML_AVX2", ("avx2",)),
    ("GGML_BMI2", ("bmi2",)),
    ("GGML_AVX_VNNI", ("avx_vnni",)),
    ("GGML_AVX512", ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")),
    ("GGML_AVX512_VBMI", ("avx512f", "avx512vbmi")),
    ("GGML_AVX512_VNNI", ("avx512f", "avx512_vnni")),
    ("GGML_AVX512_BF16", ("avx512f", "avx512_bf16")),
)
_COMMON_CMAKE = (
    "-DLLAVA_BUILD=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
)
_SAFE_SET = _HASWELL


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def cpu_flags() -> set[str]:
    """The instruction sets the OS reports for this CPU (Linux: /proc/cpuinfo, which lists only what
    the kernel enabled in XCR0). Empty where unknown (other OSes)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def amx_granted() -> Optional[bool]:
    """Whether Linux lets a process use the AMX tile state. CPUID may advertise AMX while the OS
    (or the hypervisor) does not grant it; ggml's AMX code then crashes. None off Linux/x86-64."""
    if not (sys.platform.startswith("linux") and is_x86_64()):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        sys_arch_prctl, arch_get_xcomp_perm, arch_req_xcomp_perm, xfeature_xtiledata = 158, 0x1022, 0x1023, 18
        if libc.syscall(sys_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) != 0:
            return False
        mask = ctypes.c_uint64(0)
        if libc.syscall(sys_arch_prctl, arch_get_xcomp_perm, ctypes.byref(mask)) != 0:
            return False
        return bool(mask.value & (1 << xfeature_xtiledata))
    except (OSError, AttributeError):
        return None


def usable_features(flags: Optional[set[str]] = None, amx: Optional[bool] = None) -> set[str]:
    """The CPU's instruction sets this process can really use: AMX only when the OS grants it."""
    flags = set(cpu_flags() if flags is None else flags)
    amx = amx_granted() if amx is None else amx
    if not amx:
        flags -= {f for f in flags if f.startswith("amx")}
    return flags


def cpu_features() -> dict:
    """For ``knowmix doctor`` and the set-up's output."""
    flags = cpu_flags()
    interesting = sorted(f for f in flags if f.startswith(("sse4", "avx", "amx", "fma", "f16c", "bmi")))
    amx = amx_granted()
    return {
        "machine": platform.machine(),
        "cpu_flags": interesting,
        "amx_advertised": any(f.startswith("amx") for f in flags),
        "amx_granted": amx,
        "usable": sorted(f for f in usable_features(flags, amx) if f in interesting),
        "best_variant": best_variant_name(usable_features(flags, amx)) if flags else None,
    }


def best_variant_name(usable: set[str]) -> str:
    return max((name for name, need in VARIANTS.items() if set(need) <= usable), key=lambda n: (len(VARIANTS[n]), n))


# -- building (make setup, packaging/build.py) -------------------------------------------------------


def build_cmake_args(usable: Optional[set[str]] = None) -> str:
    """CMAKE_ARGS for a llama.cpp tuned to this CPU: GGML_NATIVE=OFF with each instruction set the
    CPU and OS support switched on, and AMX always off (its kernels are what crash)."""
    if not is_x86_64():
        return " ".join(("-DGGML_NATIVE=ON",) + _COMMON_CMAKE)
    usable = usable_features() if usable is None else usable
    parts = ["-DGGML_NATIVE=OFF"]
    for flag, needs in _CMAKE_FLAGS:
        parts.append(f"-D{flag}={'ON' if set(needs) <= usable else 'OFF'}")
    parts += ["-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]
    return " ".join(parts + list(_COMMON_CMAKE))


def safe_cmake_args(usable: Optional[set[str]] = None) -> str:
    """The fallback build: AVX2 (Haswell, 2013) and nothing newer, or SSE4.2 on CPUs without AVX2."""
    if not is_x86_64():
        return " ".join(("-DGGML_NATIVE=OFF",) + _COMMON_CMAKE)
    usable = usable_features() if usable is None else usable
    return build_cmake_args(set(_SAFE_SET) & usable if set(_SAFE_SET) <= usable else {"sse4_2"} & usable)


# -- a build with runtime-dispatched CPU variants (the installers) ------------------------------------


def llama_lib_dir() -> Optional[Path]:
    """llama_cpp's library folder, found without importing llama_cpp (a packaged app: in _MEIPASS)."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle and (Path(bundle) / "llama_cpp" / "lib").is_dir():
        return Path(bundle) / "llama_cpp" / "lib"
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    lib = Path(list(spec.submodule_search_locations)[0]) / "lib"
    return lib if lib.is_dir() else None


def _variant_prefix() -> str:
    return "ggml-cpu-" if sys.platform == "win32" else "libggml-cpu-"


def variant_files(lib: Path) -> dict[str, Path]:
    """``{"haswell": .../libggml-cpu-haswell.so, ...}``: empty for a build without variants."""
    prefix, ext = _variant_prefix(), (".dll" if sys.platform == "win32" else ".so")
    out = {}
    for p in lib.iterdir():
        if p.name.startswith(prefix) and p.name.endswith(ext):
            out[p.name[len(prefix) : -len(ext)]] = p
    return out


def candidate_variants(files: dict[str, Path], usable: set[str]) -> list[str]:
    """The known variants whose instruction sets are all usable here, best first."""
    names = [n for n in files if n in VARIANTS and set(VARIANTS[n]) <= usable]
    return sorted(names, key=lambda n: (len(VARIANTS[n]), n), reverse=True)


_loaded: dict[str, str] = {}


def _ggml(lib: Path) -> ctypes.CDLL:
    core = {"win32": "ggml.dll", "darwin": "libggml.dylib"}.get(sys.platform, "libggml.so")
    return ctypes.CDLL(str(lib / core), mode=getattr(ctypes, "RTLD_GLOBAL", 0))


def load_variant(lib: Path, path: Path) -> None:
    """Register exactly one CPU backend with ggml, before llama.cpp would pick one from CPUID."""
    ggml = _ggml(lib)
    ggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load.restype = ctypes.c_void_p
    callback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
    quiet = callback(lambda level, text, data: None)  # no "load_backend: loaded CPU backend" on every start
    ggml.ggml_log_set.argtypes = [callback, ctypes.c_void_p]
    ggml.ggml_log_set(quiet, None)
    try:
        if not ggml.ggml_backend_load(os.fsencode(str(path))):
            raise OSError(f"ggml could not load {path.name}")
    finally:
        ggml.ggml_log_set(callback(), None)
    _loaded["variant"] = str(path)


def _cache_path() -> Path:
    from .paths import app_home

    return app_home() / "llama-cpu.json"


def _cache_key(lib: Path, files: dict[str, Path], usable: set[str]) -> str:
    parts = [str(lib.resolve()), platform.release(), ",".join(sorted(usable))]
    parts += [f"{n}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for n, p in sorted(files.items())]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def choose_variant(lib: Path, files: dict[str, Path], *, trial: bool = True) -> tuple[Optional[str], list[str]]:
    """The best variant that decodes here, and notes on the ones that crashed. Cached per machine."""
    usable = usable_features()
    candidates = candidate_variants(files, usable)
    if not candidates:
        return None, ["no known CPU variant matches this CPU; ggml chooses"]
    key = _cache_key(lib, files, usable)
    try:
        cached = json.loads(_cache_path().read_text(encoding="utf-8"))
        if cached.get("key") == key and cached.get("variant") in files:
            return cached["variant"], list(cached.get("notes", []))
    except (OSError, ValueError):
        pass
    notes: list[str] = []
    chosen = candidates[-1]
    for name in candidates if trial else candidates[:1]:
        if not trial:
            chosen = name
            break
        check = decode_check(variant=files[name], timeout=120)
        if check.ok:
            chosen = name
            break
        notes.append(f"the {name} CPU variant {check.message}")
    else:
        notes.append(f"every CPU variant failed its trial; using the most basic one ({chosen})")
    try:
        path = _cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key, "variant": chosen, "notes": notes, "at": time.time()}), encoding="utf-8")
    except OSError:
        pass
    return chosen, notes


def ensure_backend_loaded() -> Optional[str]:
    """Load ggml's CPU backend safely before llama_cpp is imported; returns the variant file used.

    A build without variants (the developer set-up) needs nothing. With variants, the one named in
    ``KNOWMIX_GGML_VARIANT`` (set for trial children and inherited by model processes) is loaded,
    else the one ``choose_variant`` picks, and the name is put in the environment for children.
    """
    if "variant" in _loaded:
        return _loaded["variant"]
    lib = llama_lib_dir()
    if lib is None:
        return None
    wanted = os.environ.get(VARIANT_ENV)
    files = variant_files(lib)
    if wanted and Path(wanted).is_file():  # a trial child, or a model process of an app that chose
        path = Path(wanted)
    elif not files:
        return None
    else:
        name, _notes = choose_variant(lib, files)
        if name is None:
            return None
        path = files[name]
        os.environ[VARIANT_ENV] = str(path)
    load_variant(lib, path)
    return str(path)


def build_info() -> dict:
    """How the installed llama.cpp was built, as the set-up recorded it next to its libraries."""
    lib = llama_lib_dir()
    if lib is None:
        return {}
    try:
        return json.loads((lib / BUILD_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"variants": sorted(variant_files(lib))} if variant_files(lib) else {}


# -- the one-token decode, in a child process ---------------------------------------------------------


@dataclass
class DecodeCheck:
    """How a one-token decode of the built-in model went in a child process."""

    ok: bool
    seconds: float
    returncode: Optional[int]
    signal_name: Optional[str]
    message: str  # one line a user can act on
    system_info: Optional[str] = None  # llama_print_system_info(): the CPU features llama.cpp uses
    variant: Optional[str] = None  # the ggml CPU variant file loaded, when the build has variants
    build: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def decode_check(timeout: float = 180.0, *, variant: Optional[Path] = None, model: Optional[str] = None) -> DecodeCheck:
    """Load the built-in model (or ``model``) with llama.cpp in a child process and decode one token.

    A crash of the child (SIGSEGV, SIGILL, ...) is the answer, not a crash of the caller."""
    extra = {VARIANT_ENV: str(variant)} if variant else {}
    cmd = child_command("core.llama_cpu", "--decode-check") + (["--model", model] if model else [])
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            env=child_env(extra),
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return DecodeCheck(
            False,
            time.monotonic() - t0,
            None,
            None,
            f"did not finish a one-token decode within {timeout:.0f} s",
            variant=str(variant) if variant else None,
        )
    seconds = time.monotonic() - t0
    result: dict = {}
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            try:
                result = json.loads(line)
                break
            except ValueError:
                continue
    if proc.returncode == 0 and result.get("ok"):
        return DecodeCheck(
            True,
            seconds,
            0,
            None,
            f"decoded one token in {seconds:.1f} s",
            result.get("system_info"),
            result.get("variant"),
            build_info(),
        )
    if result.get("error"):
        message = str(result["error"])
    else:
        message = f"{describe_exit(proc.returncode)} during a one-token decode"
    return DecodeCheck(
        False,
        seconds,
        proc.returncode,
        signal_name(proc.returncode),
        message,
        result.get("system_info"),
        str(variant) if variant else result.get("variant"),
        build_info(),
    )


def _decode_once(model: Optional[str]) -> dict:
    """In the child: load, decode one token, report. Prints JSON before the risky part as well, so a
    crash still leaves the system info for the parent."""
    from .errors import KnowMixError
    from .models import resolve_model

    variant = ensure_backend_loaded()
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()
    print(json.dumps({"ok": False, "stage": "loaded", "system_info": info, "variant": variant}), flush=True)
    try:
        ref = resolve_model(model or "default")
    except KnowMixError as exc:
        return {"ok": False, "error": str(exc), "system_info": info, "variant": variant}
    llm = llama_cpp.Llama(model_path=str(ref.path), n_ctx=128, n_batch=32, n_threads=1, verbose=False)
    tokens = llm.tokenize(b"Q: What is the capital of France?\nA:", add_bos=True)
    llm.eval(tokens)
    token = int(llm.sample(temp=0.0))
    return {
        "ok": True,
        "token": token,
        "text": llm.detokenize([token]).decode("utf-8", "replace"),
        "system_info": info,
        "variant": variant,
    }


def main(argv: Sequence[str]) -> int:
    """``python -m core.llama_cpu --decode-check [--model PATH]``; ``--features`` prints the CPU's."""
    args = list(argv)
    if "--features" in args:
        print(json.dumps(cpu_features()))
        return 0
    if "--decode-check" in args:
        model = args[args.index("--model") + 1] if "--model" in args else None
        os.environ.setdefault("KNOWMIX_OFFLINE", "1")
        result = _decode_once(model)
        print(json.dumps(result), flush=True)
        return 0 if result.get("ok") else 1
    if "--cmake-args" in args:
        print(safe_cmake_args() if "--safe" in args else build_cmake_args())
        return 0
    print("usage: python -m core.llama_cpu --decode-check [--model PATH] | --features | --cmake-args [--safe]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
