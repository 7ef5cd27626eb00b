"""Shared fixtures for the core tests.

Every test runs with ``KNOWMIX_HOME`` pointed at its own temp folder, so nothing a test does
(the demo project, logs, settings) lands in the real ``~/.knowmix``. Subprocesses started by a
test inherit the variable through ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.datasets import Example, load_dataset
from core.paths import sample_dataset


@pytest.fixture(autouse=True)
def knowmix_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("knowmix_home")
    monkeypatch.setenv("KNOWMIX_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def _sample_dataset():
    return load_dataset(sample_dataset())


@pytest.fixture
def sample_dataset_loaded(_sample_dataset):
    """The bundled EntityQuestions sample as a ``core.datasets.Dataset``."""
    return _sample_dataset


@pytest.fixture
def sample_examples(_sample_dataset) -> list[Example]:
    """The bundled EntityQuestions sample's examples, in file order."""
    return list(_sample_dataset.examples)


@pytest.fixture(scope="module")
def one_cpu_thread():
    """torch on one thread for a module: on a shared 2-core box, threads waiting on each other make
    every op take milliseconds. Restored after the module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def probed_project(tmp_path: Path):
    """Build a project whose probe run is finished with the categories a test chooses, without a model:
    ``probed_project(examples, {example id: category}, name="p.knowmix", model=..., ...)`` returns the open
    ``(Project, probe run id)``; the keywords are ``tests.probed.seed_project``'s."""
    from tests.probed import seed_project

    def build(examples, categories, *, name: str = "p.knowmix", **options):
        return seed_project(tmp_path / name, examples, categories, **options)

    return build


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A tiny random Llama with its own tokenizer, saved as a Hugging Face folder."""
    from tests.tiny_models import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture
def window(qtbot, monkeypatch):
    """The app's main window, shown offscreen; any job still running is cancelled afterwards.
    (Qt is imported here, not at the top, so core tests run without PySide6.)"""
    from gui.window import MainWindow

    monkeypatch.setenv("KNOWMIX_THREADS", "1")  # a shared 2-core machine: leave a core to the UI thread
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    yield win
    win.ctx.runner.cancel_all()
    win.ctx.runner.wait_all(60)
    win.ctx.release_model()
