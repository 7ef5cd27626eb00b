"""llama.cpp runs on the CPU it is on: build flags without AMX, variant choice by what the OS grants,
and a one-token decode in a child process whose crash is an answer, not the end of the caller."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core import llama_cpu

ROOT = Path(__file__).resolve().parents[1]

# A Sapphire Rapids guest whose CPUID advertises AMX (what broke the set-up and the installers).
SPR = {
    "sse4_2",
    "avx",
    "f16c",
    "fma",
    "avx2",
    "bmi2",
    "avx512f",
    "avx512cd",
    "avx512vl",
    "avx512dq",
    "avx512bw",
    "avx512vbmi",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
}


def test_amx_is_never_built_and_avx512_is_when_the_os_grants_it():
    args = llama_cpu.build_cmake_args(llama_cpu.usable_features(SPR, amx=True))
    assert "-DGGML_NATIVE=OFF" in args
    assert "-DGGML_AMX_TILE=OFF" in args and "-DGGML_AMX_INT8=OFF" in args
    assert "-DGGML_AVX512=ON" in args and "-DGGML_AVX512_BF16=ON" in args
    safe = llama_cpu.safe_cmake_args(SPR)
    assert "-DGGML_AVX2=ON" in safe and "-DGGML_AVX512=OFF" in safe and "-DGGML_AMX_INT8=OFF" in safe


def test_a_cpu_without_avx2_gets_a_build_it_can_run():
    old = {"sse4_2", "avx"}
    assert "-DGGML_AVX2=OFF" in llama_cpu.build_cmake_args(old)
    safe = llama_cpu.safe_cmake_args(old)
    assert "-DGGML_AVX2=OFF" in safe and "-DGGML_AVX=OFF" in safe and "-DGGML_SSE42=ON" in safe


def test_the_amx_variant_is_not_a_candidate_unless_the_os_grants_amx():
    files = {name: Path(f"libggml-cpu-{name}.so") for name in llama_cpu.VARIANTS}
    denied = llama_cpu.candidate_variants(files, llama_cpu.usable_features(SPR, amx=False))
    assert "sapphirerapids" not in denied and denied[0] == "zen4" and denied[-1] == "x64"
    granted = llama_cpu.candidate_variants(files, llama_cpu.usable_features(SPR, amx=True))
    assert granted[0] == "sapphirerapids"
    haswell = llama_cpu.candidate_variants(files, {"sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"})
    assert haswell[0] == "haswell" and not any(n in haswell for n in ("skylakex", "zen4", "alderlake"))


@pytest.mark.slow
def test_decode_check_decodes_one_token_with_the_built_in_model():
    check = llama_cpu.decode_check(timeout=300)
    assert check.ok, check.message
    assert check.returncode == 0 and check.signal_name is None
    assert check.system_info and "CPU" in check.system_info
    if "avx2" in llama_cpu.usable_features():
        assert "AVX2 = 1" in check.system_info
    assert "AMX_INT8 = 1" not in check.system_info  # never built in


def _compile_variant(tmp_path: Path, name: str, body: str, link: tuple[str, ...] = ()) -> Path:
    """A real shared library shaped like a ggml CPU variant (score + init), compiled here."""
    src = tmp_path / f"{name}.c"
    src.write_text(
        "extern void *ggml_backend_cpu_reg(void);\nint ggml_backend_score(void) { return 1; }\n"
        "void *ggml_backend_init(void) {" + body + "}\n"
    )
    out = tmp_path / f"libggml-cpu-{name}.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out), str(src), *link], check=True)
    return out


needs_cc = pytest.mark.skipif(
    shutil.which("cc") is None or not sys.platform.startswith("linux"),
    reason="needs a C compiler on Linux to build a variant that crashes",
)


@needs_cc
@pytest.mark.slow
def test_a_variant_that_crashes_is_reported_by_signal_and_the_caller_lives_on(tmp_path):
    bad = _compile_variant(tmp_path, "haswell", "__builtin_trap(); return 0;")  # ud2: SIGILL, as the AMX variant did
    check = llama_cpu.decode_check(variant=bad, timeout=300)
    assert not check.ok
    assert check.signal_name == "SIGILL"
    assert "SIGILL" in check.message and "illegal instruction" in check.message
    assert check.variant == str(bad)


@needs_cc
@pytest.mark.slow
def test_choose_variant_falls_back_past_a_crashing_variant_and_caches_the_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOWMIX_HOME", str(tmp_path / "home"))
    lib = tmp_path / "lib"
    lib.mkdir()
    crash = _compile_variant(lib, "haswell", "__builtin_trap(); return 0;")
    # "x64" hands ggml the CPU backend of this set-up's own llama.cpp: a variant that really decodes.
    real = llama_cpu.llama_lib_dir()
    if real is None or not (real / "libggml-cpu.so").exists():
        pytest.skip("this llama.cpp build has no separate libggml-cpu.so to stand in for a variant")
    fine = _compile_variant(
        lib, "x64", "return ggml_backend_cpu_reg();", (f"-L{real}", "-l:libggml-cpu.so", f"-Wl,-rpath,{real}")
    )
    files = llama_cpu.variant_files(lib)
    assert files == {"haswell": crash, "x64": fine}
    if "haswell" not in llama_cpu.candidate_variants(files, llama_cpu.usable_features()):
        pytest.skip("this CPU cannot run the haswell level, so there is nothing to fall back from")
    chosen, notes = llama_cpu.choose_variant(lib, files)
    assert chosen == "x64"
    assert any("haswell" in n and "SIGILL" in n for n in notes)
    cache = json.loads((tmp_path / "home" / "llama-cpu.json").read_text())
    assert cache["variant"] == "x64"
    # the second start trusts the cache: no trial child, same answer
    assert llama_cpu.choose_variant(lib, files) == ("x64", notes)


def test_the_module_runs_as_a_child_and_prints_the_cpu_features():
    out = subprocess.run(
        [sys.executable, "-m", "core.llama_cpu", "--features"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    data = json.loads(out.stdout)
    assert set(data) >= {"cpu_flags", "amx_advertised", "amx_granted", "usable", "best_variant"}
