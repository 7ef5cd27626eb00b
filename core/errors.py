"""Errors a user can act on.

Every failure caused by the user's input (a file, a setting, the machine) is raised as a
``KnowMixError`` subclass whose message says what went wrong, where, and what to do. The CLI
prints the message on one line and exits non-zero; the GUI shows it in a dialog. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class KnowMixError(Exception):
    """Base class: the message is written for the person at the keyboard."""

    exit_code = 2


class DatasetError(KnowMixError):
    """A dataset file cannot be read, or its rows are not usable."""


class ModelError(KnowMixError):
    """A model file or folder cannot be loaded."""


class ProjectError(KnowMixError):
    """The project file cannot be opened or written."""


class SettingsError(KnowMixError):
    """A setting is out of range or contradicts another."""


class Cancelled(KnowMixError):
    """The user asked a running job to stop; its finished work is saved."""

    exit_code = 130


class ModelCrashed(ModelError):
    """The process running the model ended without being asked to (a native crash in llama.cpp or
    torch, the out-of-memory killer, a kill). Only that child died: the caller is alive, knows what
    is saved, and says so in one line a non-engineer can act on.

    The parts are kept so that each layer can add what it knows without re-parsing the text: the
    backend knows how the process ended and what it was asked to do, the probe knows the group and
    batch and how much is saved, the app knows which button resumes.
    """

    def __init__(
        self,
        exit_text: str = "ended unexpectedly",
        *,
        doing: str = "working",
        backend: str = "",
        saved: str = "",
        resume: str = "",
        app: bool = False,
        returncode: "int | None" = None,
    ) -> None:
        self.exit_text, self.doing, self.backend = exit_text, doing, backend
        self.saved, self.resume, self.app, self.returncode = saved, resume, app, returncode
        super().__init__(self._compose())

    def _compose(self) -> str:
        if self.app:
            other = "another backend in the Model step"
        else:
            other = (
                "another backend ("
                + ("--backend llama.cpp with a GGUF file" if self.backend == "torch" else "--backend torch")
                + ")"
            )
        parts = [f"The model process {self.exit_text} while {self.doing}."]
        parts += [p for p in (self.saved, self.resume) if p]
        doctor = "run `knowmix doctor`" + (" in a terminal" if self.app else "") + " to check this machine"
        parts.append(f"If it crashes again, {doctor}, try a smaller model, or {other}.")
        return " ".join(parts)

    def retold(self, **changes: object) -> "ModelCrashed":
        """The same crash told with more context (``doing``, ``saved``, ``resume``, ``app``)."""
        fields = dict(
            doing=self.doing, backend=self.backend, saved=self.saved, resume=self.resume, app=self.app, returncode=self.returncode
        )
        fields.update(changes)
        return ModelCrashed(self.exit_text, **fields)  # type: ignore[arg-type]

    def __reduce__(self):  # keep the parts when the error crosses a process or a thread queue
        return (_rebuild_crash, (self.exit_text, self.__dict__.copy()))


def _rebuild_crash(exit_text: str, state: dict) -> ModelCrashed:
    fields = {k: state[k] for k in ("doing", "backend", "saved", "resume", "app", "returncode") if k in state}
    return ModelCrashed(exit_text, **fields)
