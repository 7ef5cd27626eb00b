"""The offline guarantee (issue 5) and `knowmix doctor`.

* The whole pipeline, probe -> plan -> train -> report, runs with every network call refused, in
  this process and in the training worker (a ``sitecustomize.py`` first on the child's
  ``PYTHONPATH`` installs the same block there; see tests/netblock.py). The probe uses the real
  built-in GGUF through llama.cpp, training the tiny Hugging Face model, so the real backends'
  imports happen under the block.
* The Hugging Face offline switches are set by importing ``core``, before transformers is
  imported, and transformers itself then reports offline mode.
  (tests/test_import_contract.py checks that a hostile shell cannot turn them off.)
* `knowmix doctor` prints what a bug report needs and never fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.offline import OFFLINE_SWITCHES

sys.path.insert(0, str(Path(__file__).parent))
import netblock  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """Refuse the network here and in every Python child; yields the attempts seen in this process
    and the files where children log theirs (and their pids, proving the block reached them)."""
    attempts: list[str] = []
    site = netblock.write_sitecustomize(tmp_path / "netblock-site")
    child_log, armed = tmp_path / "child-network.log", tmp_path / "child-armed.log"
    monkeypatch.setenv("PYTHONPATH", site + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    monkeypatch.setenv(netblock.LOG_ENV, str(child_log))
    monkeypatch.setenv(netblock.ARMED_ENV, str(armed))
    netblock.install(monkeypatch.setattr, attempts)
    yield attempts, child_log, armed


def test_the_block_really_refuses_the_network(no_network):
    import socket
    import urllib.request

    attempts, _log, _armed = no_network
    with pytest.raises(netblock.NetworkBlocked):
        urllib.request.urlopen("http://example.com", timeout=1)
    with pytest.raises(netblock.NetworkBlocked):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(netblock.NetworkBlocked):
        socket.getaddrinfo("localhost", 80)
    assert len(attempts) == 3


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_probe_plan_train_report_run_with_the_network_blocked(tmp_path, tiny_folder, no_network, monkeypatch):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("peft")
    from core.datasets import load_dataset, take_balanced
    from core.paths import sample_dataset, sample_pool
    from core.plan import PlanSettings, build_plan, save_plan
    from core.probe import ProbeRequest, preset, run_probe
    from core.report import write_report
    from core.store import Project
    from core.train import TrainSettings
    from core.train.runner import start_training

    attempts, child_log, armed = no_network
    monkeypatch.setenv("KNOWMIX_THREADS", "1")
    project_path = tmp_path / "offline.knowmix"

    ds = take_balanced(load_dataset(sample_dataset()), 6)
    pool = load_dataset(sample_pool())
    with Project(project_path) as project:
        dataset_id = project.add_dataset(ds, role="train")
        pool_id = project.add_dataset(pool, role="pool")
        probe = run_probe(
            project,
            ProbeRequest(
                dataset_id=dataset_id,
                pool_dataset_id=pool_id,
                model_spec="default",
                settings=preset("smoke"),
                backend_name="llama.cpp",
                backend_options={"n_threads": 1},
            ),
        )
        assert probe.status == "finished" and probe.n_done == 6
        plan_id = save_plan(project, build_plan(project, probe.run_id, PlanSettings(mix="natural", dev_fraction=0.5)))

    settings = TrainSettings(
        epochs=1,
        threads=1,
        batch_size=4,
        lr=5e-3,
        warmup_ratio=0.0,
        fit_sample_per_category=2,
        eval_batch_size=8,
        max_new_tokens=4,
        other_model=True,  # probed with the default model, trained on the tiny one: --other-model
    )
    out = start_training(project_path, plan_id, settings, model=str(tiny_folder))
    assert out.status == "done", out
    assert out.adapter_dir and Path(out.adapter_dir, "adapter_model.safetensors").is_file()

    report = write_report(project_path, tmp_path / "offline-report.html")
    assert report.is_file() and report.stat().st_size > 0

    assert attempts == [], attempts
    assert not child_log.exists(), child_log.read_text()
    pids = armed.read_text().split() if armed.exists() else []
    assert pids, "the training worker never installed the network block (sitecustomize not loaded?)"


def test_importing_core_sets_the_offline_switches_before_transformers_is_imported():
    """A fresh interpreter with the switches removed: `import core` sets them all and imports no
    transformers; transformers, imported afterwards, then runs in its own offline mode."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_SWITCHES}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    code = (
        "import json, os, sys\n"
        "from importlib import import_module\n"
        "before = {k: os.environ.get(k) for k in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE')}\n"
        "import core\n"
        "from core.offline import OFFLINE_SWITCHES\n"
        "after = {k: os.environ.get(k) for k in OFFLINE_SWITCHES}\n"
        "loaded = sorted(m for m in ('transformers', 'huggingface_hub') if m in sys.modules)\n"
        "import transformers\n"
        "import huggingface_hub.constants as hub\n"
        "from transformers.utils.hub import is_offline_mode  # what transformers checks before any download\n"
        "print(json.dumps({'before': before, 'after': after, 'loaded': loaded,\n"
        "                  'hub_offline': hub.HF_HUB_OFFLINE, 'transformers_offline': is_offline_mode()}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"] == {"HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None}
    assert out["after"] == OFFLINE_SWITCHES
    assert all(out["after"][k] == "1" for k in OFFLINE_SWITCHES if k != "TOKENIZERS_PARALLELISM")
    assert out["loaded"] == []
    assert out["hub_offline"] is True and out["transformers_offline"] is True


# ----------------------------------------------------------------------------------- knowmix doctor


def _doctor(capsys, *args: str) -> tuple[int, str]:
    from core.cli import main

    code = main(["doctor", *args])
    return code, capsys.readouterr().out


def test_doctor_prints_versions_model_data_folder_and_offline_mode(capsys, knowmix_home):
    from importlib.metadata import version

    from core import __version__
    from core.models import default_model_path

    code, out = _doctor(capsys, "--no-backend-checks")  # the backends' own test: test_doctor_backends.py
    assert code == 0
    assert f"KnowMix {__version__}" in out
    assert str(default_model_path()) in out and "check: passes" in out
    assert f"Data folder: {knowmix_home}" in out and "writable" in out
    assert "Offline mode: on" in out and "network: not used at run time" in out
    for key, value in OFFLINE_SWITCHES.items():
        assert f"{key}={value}" in out
    for dist in ("numpy", "sqlite-utils", "transformers", "peft", "llama-cpp-python", "pyqtgraph"):
        assert version(dist) in out, dist
    assert "llama_cpp" in out and "PySide6" in out and "pyqtgraph" in out and "torch" in out
    assert "RAM:" in out and "GPU:" in out
    assert "PROBLEM" not in out


def test_doctor_json_parses(capsys):
    code, out = _doctor(capsys, "--json", "--no-gpu", "--no-backend-checks")  # backends: test_doctor_backends.py
    assert code == 0
    info = json.loads(out)
    assert info["packages"]["numpy"] and info["model"]["ok"] is True
    assert info["offline"]["in_force"] is True and info["offline"]["network"] == "not used at run time"
    assert info["data_folder"]["writable"] is True and info["problems"] == []
    assert set(info["packages"]) >= {
        "torch",
        "transformers",
        "peft",
        "llama_cpp",
        "PySide6",
        "pyqtgraph",
        "sqlite-utils",
        "numpy",
    }


def test_doctor_flags_a_missing_model_and_still_exits_0(capsys, tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "model.gguf"
    monkeypatch.setenv("KNOWMIX_DEFAULT_MODEL", str(missing))
    code, out = _doctor(capsys, "--no-gpu", "--no-backend-checks")
    assert code == 0
    problems = [line for line in out.splitlines() if line.startswith("PROBLEM:")]
    assert problems and str(missing) in problems[0], out
    code, out = _doctor(capsys, "--json", "--no-gpu", "--no-backend-checks")
    assert code == 0 and json.loads(out)["model"]["ok"] is False


def test_doctor_says_not_installed_for_missing_packages(monkeypatch):
    """The lite edition has no torch: its version reads 'not installed' and the GPU is not probed."""
    from importlib import metadata

    from core import doctor

    real = metadata.version

    def fake(name):
        if name in ("torch", "peft"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(doctor.metadata, "version", fake)
    info = doctor.collect()
    assert info["packages"]["torch"] is None and info["devices"]["gpu"]["checked"] is False
    text = doctor.format_text(info)
    assert "not installed" in text and "torch is not installed" in text
    assert not any("torch" in p for p in info["problems"])  # the lite edition is not broken
