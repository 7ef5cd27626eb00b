"""Step 2: pick the model (built-in, a GGUF file or a Hugging Face folder) and the backend, see what
this machine has, and load the model off the UI thread so the probe can reuse it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from core.formats import format_gib, format_mib

from ..qt import Qt, QtWidgets
from .base import DONE, READY, InlineMessage, Page, ProgressRow

BACKENDS = [
    ("auto", "Automatic (GGUF → llama.cpp, folder → torch)"),
    ("llama.cpp", "llama.cpp (CPU)"),
    ("torch", "torch (GPU, or CPU)"),
]
DEVICES = [("auto", "Automatic (GPU if there is one)"), ("cuda", "GPU (CUDA)"), ("cpu", "CPU")]


def detect_hardware(_job: Any = None) -> dict:
    """CPU, RAM and GPU (``core.devices``: torch is imported only if it is installed). Runs on a
    worker thread."""
    import platform

    from core.devices import detect_devices

    info: dict = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count() or 1}
    try:
        import psutil

        vm = psutil.virtual_memory()
        info["ram_total"], info["ram_free"] = vm.total, vm.available
    except Exception:  # noqa: BLE001 - a missing number is shown as unknown
        pass
    found = detect_devices()
    info["torch"] = found.checked
    info["gpus"] = [{"name": g.name, "memory": g.memory} for g in found.cuda]
    if not found.cuda and found.mps:
        info["gpus"].append({"name": "Apple GPU (MPS)", "memory": None})
    if found.error:
        info["gpu_error"] = found.error
    return info


def describe_hardware(info: dict) -> str:
    parts = [f"CPU: {info.get('cores', '?')} cores"]
    if info.get("ram_total"):
        parts.append(f"RAM: {format_gib(info['ram_total'])} ({format_gib(info['ram_free'])} free)")
    gpus = info.get("gpus") or []
    if gpus:
        parts.append(
            "GPU: " + "; ".join(f"{g['name']}" + (f" ({format_gib(g['memory'], 0)})" if g.get("memory") else "") for g in gpus)
        )
    elif not info.get("torch"):
        parts.append("GPU: not usable (this edition has no torch)")
    else:
        parts.append("GPU: none found — the torch backend will use the CPU")
    return " · ".join(parts)


SERVER_SPEC = "server:"  # a model on a server: "server:" + JSON of url, model, api_key_env (a name, never a key)


def server_spec(url: str, model: str = "", api_key_env: str = "") -> str:
    """The model choice "a model on a server" as the one string the app keeps (settings, project)."""
    return SERVER_SPEC + json.dumps({"url": url.strip(), "model": model.strip(), "api_key_env": api_key_env.strip()})


def parse_server_spec(spec: str) -> Optional[dict]:
    if not spec.startswith(SERVER_SPEC):
        return None
    try:
        data = json.loads(spec[len(SERVER_SPEC) :])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def load_model(spec: str, backend: str, device: str, n_threads: Optional[int] = None):
    """Resolve, check and load; returns the backend. Runs on a worker thread.

    The model lives in its own process (``ProcessBackend``): a native crash of llama.cpp or torch
    then ends that process with a ``ModelCrashed`` error shown on the page, never the window. A
    model on a server gets the server's start-up checks (``core.backends.server``) and no process."""
    from core.backends import backend_for, load_backend
    from core.models import model_fingerprint, resolve_model

    server = parse_server_spec(spec)
    if server is not None:
        return load_backend(
            server.get("url", ""),
            "server",
            server_model=server.get("model") or None,
            api_key_env=server.get("api_key_env") or None,
        )
    from core.probe import load_options

    ref = resolve_model(spec)
    name = backend_for(ref, backend)
    fingerprint = model_fingerprint(ref) if name == "llama.cpp" else ""
    return load_backend(ref, name, isolate=True, **load_options(name, fingerprint, n_threads=n_threads, device=device))


def app_wording(exc: BaseException, resume: str = "") -> BaseException:
    """A ``ModelCrashed`` told for the app (buttons and steps instead of command-line options)."""
    from core.errors import ModelCrashed

    if isinstance(exc, ModelCrashed):
        return exc.retold(app=True, resume=resume or exc.resume)
    return exc


def describe_model(info: Any) -> str:
    rows = [
        ("Name", info.name),
        ("Backend", f"{info.backend} on {info.device}"),
        ("File", info.path),
        ("Size", format_mib(info.file_size)),
    ]
    if info.n_params:
        rows.append(("Parameters", f"{info.n_params / 1e6:,.0f} M"))
    if info.context_length:
        rows.append(("Context length", f"{info.context_length:,} tokens"))
    if info.architecture:
        rows.append(("Architecture", info.architecture))
    if info.dtype:
        rows.append(("Weights", info.dtype))
    rows.append(("Fingerprint", info.fingerprint[:24] + "…"))
    return "<table>" + "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{_esc(v)}</td></tr>" for k, v in rows) + "</table>"


def _esc(text: Any) -> str:
    import html

    return html.escape(str(text))


class ModelPage(Page):
    title = "Model"
    key = "model"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(ctx, parent)
        self.hardware: Optional[dict] = None
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(
            self.heading(
                "Model",
                "The model whose knowledge is probed. Everything stays on this computer: models are read from "
                "disk, never downloaded.",
            )
        )
        self.hw_label = QtWidgets.QLabel("Looking at this machine …")
        self.hw_label.setObjectName("hardwareLabel")
        self.hw_label.setWordWrap(True)
        lay.addWidget(self.hw_label)
        # A server named by the opened project: shown, and used only when the user says so.
        self.offer_box = QtWidgets.QWidget()
        offer = QtWidgets.QHBoxLayout(self.offer_box)
        offer.setContentsMargins(0, 0, 0, 0)
        self.offer_label = QtWidgets.QLabel("")
        self.offer_label.setObjectName("serverOffer")
        self.offer_label.setWordWrap(True)
        self.offer_button = QtWidgets.QPushButton("Use this server")
        self.offer_button.setObjectName("useOfferedServer")
        self.offer_button.clicked.connect(self._use_offered)
        offer.addWidget(self.offer_label, 1)
        offer.addWidget(self.offer_button)
        self.offer_box.hide()
        lay.addWidget(self.offer_box)

        box = QtWidgets.QGroupBox("Which model")
        form = QtWidgets.QGridLayout(box)
        self.rb_default = QtWidgets.QRadioButton("Built-in: SmolLM2-135M-Instruct (GGUF, 93 MB)")
        self.rb_gguf = QtWidgets.QRadioButton("A GGUF file")
        self.rb_hf = QtWidgets.QRadioButton("A Hugging Face model folder (config.json + safetensors)")
        self.rb_server = QtWidgets.QRadioButton("A model on a server (OpenAI-compatible: vLLM, SGLang, llama.cpp, Ollama)")
        self.url_edit = QtWidgets.QLineEdit()
        self.url_edit.setObjectName("serverUrl")
        self.url_edit.setPlaceholderText("http://host:8000 (the only address KnowMix contacts)")
        self.server_model_edit = QtWidgets.QLineEdit()
        self.server_model_edit.setObjectName("serverModel")
        self.server_model_edit.setPlaceholderText("optional: the model id on the server")
        self.key_env_edit = QtWidgets.QLineEdit()
        self.key_env_edit.setObjectName("serverKeyEnv")
        self.key_env_edit.setPlaceholderText("optional: name of the environment variable with the API key (never the key)")
        self.path_edit = QtWidgets.QLineEdit()
        self.path_edit.setObjectName("modelPath")
        self.path_edit.setPlaceholderText("Path to a .gguf file or a model folder")
        self.browse = QtWidgets.QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        form.addWidget(self.rb_default, 0, 0, 1, 3)
        form.addWidget(self.rb_gguf, 1, 0, 1, 3)
        form.addWidget(self.rb_hf, 2, 0, 1, 3)
        form.addWidget(QtWidgets.QLabel("Path:"), 3, 0)
        form.addWidget(self.path_edit, 3, 1)
        form.addWidget(self.browse, 3, 2)
        form.addWidget(QtWidgets.QLabel("Backend:"), 4, 0)
        self.backend_combo = QtWidgets.QComboBox()
        for value, label in BACKENDS:
            self.backend_combo.addItem(label, value)
        form.addWidget(self.backend_combo, 4, 1, 1, 2)
        form.addWidget(QtWidgets.QLabel("Device (torch):"), 5, 0)
        self.device_combo = QtWidgets.QComboBox()
        for value, label in DEVICES:
            self.device_combo.addItem(label, value)
        form.addWidget(self.device_combo, 5, 1, 1, 2)
        form.addWidget(self.rb_server, 6, 0, 1, 3)
        for row_at, (label, edit) in enumerate(
            (("Server URL:", self.url_edit), ("Model name:", self.server_model_edit), ("API key variable:", self.key_env_edit)),
            start=7,
        ):
            form.addWidget(QtWidgets.QLabel(label), row_at, 0)
            form.addWidget(edit, row_at, 1, 1, 2)
            edit.editingFinished.connect(self._choice_changed)
        lay.addWidget(box)
        for rb in (self.rb_default, self.rb_gguf, self.rb_hf, self.rb_server):
            rb.toggled.connect(self._choice_changed)
        self.path_edit.editingFinished.connect(self._choice_changed)
        self.backend_combo.currentIndexChanged.connect(self._choice_changed)
        self.device_combo.currentIndexChanged.connect(self._choice_changed)

        row = QtWidgets.QHBoxLayout()
        self.load_button = QtWidgets.QPushButton("Check and load the model")
        self.load_button.setObjectName("loadModel")
        self.load_button.clicked.connect(self.load)
        self.unload_button = QtWidgets.QPushButton("Unload")
        self.unload_button.clicked.connect(self.ctx.release_model)
        row.addWidget(self.load_button)
        row.addWidget(self.unload_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.progress = ProgressRow()
        self.progress.hide()
        lay.addWidget(self.progress)
        self.message = InlineMessage()
        lay.addWidget(self.message)
        self.info_label = QtWidgets.QLabel("")
        self.info_label.setObjectName("modelInfo")
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.info_label)
        lay.addStretch(1)
        self._detecting = False
        self._syncing = False
        self._set_from_spec(ctx.model_spec)

    # -- navigator ------------------------------------------------------------------------------
    def watched_fields(self):
        return ("model_spec", "backend", "model_info", "backend_name", "device", "probe_run_id", "offered_spec")

    def step_state(self):
        if self.ctx.model_info is not None:
            return DONE, f"Loaded: {self.ctx.model_info.name}"
        offered = parse_server_spec(self.ctx.offered_spec or "")
        if offered is not None and self.ctx.offered_spec != self.ctx.model_spec:
            return READY, f"This project was probed through server {offered.get('url')}: use it, or choose a model, here"
        if self.ctx.probe_run_id is not None:
            return DONE, f"Model: {self.ctx.model_spec} (used by the probe; it loads again when needed)"
        server = parse_server_spec(self.ctx.model_spec)
        shown = f"server {server.get('url')}" if server else self.ctx.model_spec
        return READY, f"Model: {shown} (loads when you probe, or now with “Check and load”)"

    def primary_action(self) -> None:
        if self.load_button.isEnabled():
            self.load()

    # -- choice -----------------------------------------------------------------------------------
    def _set_from_spec(self, spec: str) -> None:
        """Show the context's choice without treating it as a new choice by the user."""
        self._syncing = True
        try:
            self._apply_spec(spec)
        finally:
            self._syncing = False
        self._enable_fields()

    def _enable_fields(self) -> None:
        server = self.rb_server.isChecked()
        file = not self.rb_default.isChecked() and not server
        self.path_edit.setEnabled(file)
        self.browse.setEnabled(file)
        for edit in (self.url_edit, self.server_model_edit, self.key_env_edit):
            edit.setEnabled(server)
        self.backend_combo.setEnabled(not server)
        self.device_combo.setEnabled(not server and self.backend_combo.currentData() != "llama.cpp")

    def _apply_spec(self, spec: str) -> None:
        server = parse_server_spec(spec)
        if server is not None:
            self.rb_server.setChecked(True)
            self.url_edit.setText(str(server.get("url", "")))
            self.server_model_edit.setText(str(server.get("model", "")))
            self.key_env_edit.setText(str(server.get("api_key_env", "")))
        elif spec == "default":
            self.rb_default.setChecked(True)
        else:
            (self.rb_hf if Path(spec).is_dir() else self.rb_gguf).setChecked(True)
            self.path_edit.setText(spec)
        self.backend_combo.setCurrentIndex(max(0, self.backend_combo.findData(self.ctx.backend_name)))
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(self.ctx.device)))

    def chosen_spec(self) -> str:
        if self.rb_default.isChecked():
            return "default"
        if self.rb_server.isChecked():
            url = self.url_edit.text().strip()
            return server_spec(url, self.server_model_edit.text(), self.key_env_edit.text()) if url else ""
        return self.path_edit.text().strip()

    def _browse(self) -> None:
        start = self.path_edit.text() or str(Path.home())
        if self.rb_hf.isChecked():
            path = QtWidgets.QFileDialog.getExistingDirectory(self, "Choose a model folder", start)
        else:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Choose a GGUF file", start, "GGUF models (*.gguf);;All files (*)"
            )
        if path:
            self.path_edit.setText(path)
            if not self.rb_hf.isChecked():
                self.rb_gguf.setChecked(True)
            self._choice_changed()

    def _choice_changed(self) -> None:
        if self._syncing:
            return
        self._enable_fields()
        spec = self.chosen_spec()
        backend = self.backend_combo.currentData()
        device = self.device_combo.currentData()
        changed = (spec, backend, device) != (self.ctx.model_spec, self.ctx.backend_name, self.ctx.device)
        if changed and spec:
            if self.ctx.backend is not None:
                self.ctx.release_model()  # a loaded model that is no longer the chosen one would mislead the probe
            self.ctx.set(model_spec=spec, backend_name=backend, device=device)
            self.message.clear_message()

    def _show_offer(self) -> None:
        offered = parse_server_spec(self.ctx.offered_spec or "")
        if offered is None or self.ctx.offered_spec == self.ctx.model_spec:
            self.offer_box.hide()
            return
        self.offer_label.setText(
            f"This project was probed through server {_esc(offered.get('url'))}; use it? Requests go to that "
            "address only after you choose it (name the API key's variable yourself if the server needs one)."
        )
        self.offer_box.show()

    def _use_offered(self) -> None:
        """The user's click: the project's server becomes the model (its key variable is never taken from the project)."""
        spec = self.ctx.offered_spec
        if spec:
            self.ctx.release_model()
            self.ctx.set(model_spec=spec, offered_spec=None)
        self.offer_box.hide()

    # -- jobs -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        self._show_offer()
        if self.chosen_spec() != self.ctx.model_spec:
            self._set_from_spec(self.ctx.model_spec)
        if self.hardware is None and not self._detecting:
            self._detecting = True
            self.ctx.runner.start(
                "Detecting hardware",
                detect_hardware,
                on_done=self._hardware,
                exclusive=False,
                on_error=lambda exc, tb: self.hw_label.setText(f"Could not look at this machine: {exc}"),
            )
        info = self.ctx.model_info
        if info is not None:
            self.info_label.setText(describe_model(info))
        else:
            self.info_label.setText("No model loaded yet. The probe loads it when it starts; load it now to check it first.")

    def _hardware(self, info: dict) -> None:
        self.hardware = info
        self.hw_label.setText(describe_hardware(info))

    def load(self) -> None:
        spec = self.chosen_spec()
        if not spec:
            what = "the server's URL" if self.rb_server.isChecked() else "a GGUF file or a model folder first (Browse…)"
            self.message.show_message(f"Choose {what}, or the built-in model.", "error")
            return
        self._choice_changed()
        self.ctx.release_model()
        self.message.clear_message()
        self.progress.show()
        server = parse_server_spec(spec)
        self.progress.set_busy(f"Checking the server at {server.get('url')} …" if server else f"Checking and loading {spec} …")
        backend, device = self.ctx.backend_name, self.ctx.device
        self.ctx.runner.start(
            "Loading the model",
            lambda job: load_model(spec, backend, device),
            on_done=self._loaded,
            on_error=lambda exc, tb: self.report_error(app_wording(exc), tb),
            on_finally=lambda: self.progress.hide(),
        )

    def _loaded(self, backend) -> None:
        self.ctx.set(backend=backend, model_info=backend.info)
        warning = backend.info.extra.get("not_comparable")
        if warning:  # a server that ignores seed or top_k: said here, in the run's note and in the report
            self.message.show_message(f"{backend.info.name} answers, but: {warning}", "warning")
        else:
            self.message.show_message(f"{backend.info.name} is loaded and ready to probe.", "ok")
        self.refresh()

    def update_actions(self) -> None:
        busy = self.ctx.runner.busy
        self.load_button.setEnabled(not busy)
        self.unload_button.setEnabled(not busy and self.ctx.backend is not None)
