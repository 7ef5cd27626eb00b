"""A model's chat template rendered in a short-lived child process, with a time and a size limit.

A chat template is a program that comes with a downloaded GGUF (``tokenizer.chat_template``): a
Jinja template can loop for ever or build gigabytes, and jinja2's sandbox stops neither. So the
app and the CLI never render one themselves (issue 19): ``SandboxedTemplate`` starts this module
as a child (``core.processes.child_command``), compiles the template there, and sends it the
conversations to render. The child limits its own memory (``CHILD_MEMORY_BYTES`` of address
space, on POSIX) and every prompt it returns (``MAX_PROMPT_CHARS``, counted while the template
streams its output); the parent kills it when a call takes longer than its time limit. Each ends
as one ``SettingsError`` that names the model and says to probe without ``--chat-template``; the
app's process is untouched.

The protocol is ``core.backends.process``'s: length-prefixed pickles, ``(op, payload)`` in,
``("ok", value)`` or ``("error", message)`` out; the child exits when its input closes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import weakref
from typing import IO, Any, Mapping, Optional, Sequence

from ..errors import SettingsError
from ..processes import child_command, child_env
from .process import _stop, read_message, write_message

MODULE = "core.backends.chat_sandbox"
RENDER_TIMEOUT_S = 10.0  # a real template renders a prompt in well under a millisecond
MAX_PROMPT_CHARS = 1_000_000  # a probe prompt is a few hundred tokens; a template that makes more is broken
CHILD_MEMORY_BYTES = 512 << 20


class SandboxedTemplate:
    """A model's chat template, compiled and rendered in its own child process."""

    def __init__(
        self,
        template: str,
        bos_token: str = "",
        eos_token: str = "",
        model: str = "the model",
        *,
        timeout_s: float = RENDER_TIMEOUT_S,
        max_chars: int = MAX_PROMPT_CHARS,
    ) -> None:
        self.model, self.timeout_s, self.max_chars = model, timeout_s, max_chars
        self._lock = threading.Lock()
        try:
            self._proc: Optional[subprocess.Popen] = subprocess.Popen(
                child_command(MODULE),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=child_env(),
            )
        except OSError as exc:
            raise SettingsError(f"The chat template of {model} cannot be rendered: its process cannot start ({exc}).") from None
        self._finalizer = weakref.finalize(self, _stop, self._proc, 0.5)
        try:
            self._call(
                "compile", {"template": template, "bos": bos_token, "eos": eos_token, "model": model, "max_chars": max_chars}, 0
            )
        except BaseException:
            self.close()
            raise

    @classmethod
    def of(cls, info: Any, **limits: Any) -> "SandboxedTemplate":
        """The template a backend's ``ModelInfo`` carries; a clear error when the model has none."""
        from .chat import template_of

        template, bos, eos, name = template_of(info)
        return cls(template, bos, eos, name, **limits)

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        """One conversation as the prompt text (with the generation prompt added)."""
        return self.render_many([messages])[0]

    def render_many(self, conversations: Sequence[Sequence[Mapping[str, str]]]) -> list[str]:
        """Several conversations in one round trip, as the probe renders a batch."""
        convs = [[dict(m) for m in messages] for messages in conversations]
        return list(self._call("render", convs, len(convs)))

    def _call(self, op: str, payload: Any, n: int) -> Any:
        limit = self.timeout_s * (1 + n / 1000)
        with self._lock:
            proc = self._proc
            if proc is None:
                raise SettingsError(f"The chat template of {self.model} is closed.")
            timer = threading.Timer(limit, proc.kill)
            timer.daemon = True
            timer.start()
            try:
                write_message(proc.stdin, (op, payload))  # type: ignore[arg-type]
                status, value = read_message(proc.stdout)  # type: ignore[arg-type]
            except (EOFError, OSError, ValueError):
                timed_out = not timer.is_alive()
                self.close()
                if timed_out:
                    raise SettingsError(
                        f"The chat template of {self.model} did not finish within {limit:.0f} s (it may loop for ever), "
                        "so it was stopped. Probe without --chat-template."
                    ) from None
                raise SettingsError(
                    f"The chat template of {self.model} stopped its process (it may need more than "
                    f"{CHILD_MEMORY_BYTES >> 20} MiB of memory). Probe without --chat-template."
                ) from None
            finally:
                timer.cancel()
        if status == "ok":
            return value
        raise SettingsError(value)

    def close(self) -> None:
        """Stop the child; rendering again raises a SettingsError."""
        proc, self._proc = self._proc, None
        if proc is not None:
            self._finalizer.detach()
            _stop(proc, 0.5)

    def __enter__(self) -> "SandboxedTemplate":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the child side ---------------------------------------------------------------------------------


def _limit_memory() -> None:
    """Cap this process's address space, so a template that builds gigabytes fails with a
    MemoryError here instead of taking the machine's memory (POSIX; best effort elsewhere)."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass


def serve(proto_in: IO[bytes], proto_out: IO[bytes]) -> int:
    """Compile once, then render until the parent closes the pipe."""
    from .chat import ChatTemplate

    template: Optional[ChatTemplate] = None
    max_chars = MAX_PROMPT_CHARS
    while True:
        try:
            op, payload = read_message(proto_in)
        except EOFError:
            return 0
        try:
            if op == "compile":
                max_chars = int(payload["max_chars"])
                template = ChatTemplate(
                    payload["template"], payload["bos"], payload["eos"], payload["model"], max_chars=max_chars
                )
                reply: tuple = ("ok", None)
            elif op == "render" and template is not None:
                reply = ("ok", [template.render(messages) for messages in payload])
            else:
                reply = ("error", f"unknown request {op!r}")
        except SettingsError as exc:
            reply = ("error", str(exc))
        except MemoryError:
            name = payload.get("model") if isinstance(payload, dict) else getattr(template, "model", "the model")
            reply = (
                "error",
                f"The chat template of {name} needs more than {CHILD_MEMORY_BYTES >> 20} MiB of memory to render a "
                "prompt, so it was stopped. Probe without --chat-template.",
            )
        try:
            write_message(proto_out, reply)
        except (BrokenPipeError, OSError):
            return 0


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m core.backends.chat_sandbox`` (or ``knowmix -m ...`` in a packaged app); no arguments."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # nothing a template prints can corrupt a message
    os.close(devnull)
    _limit_memory()
    return serve(proto_in, proto_out)


if __name__ == "__main__":
    sys.exit(main())
