"""Probe through a serving engine: any OpenAI-compatible ``/v1/completions`` endpoint.

vLLM, SGLang, llama.cpp's server (and llama-cpp-python's), Ollama's OpenAI endpoint: a team that
already serves its model on a GPU box points ``knowmix probe --server URL`` at it. The standard
library only (urllib, json, a thread pool): no client package.

What each request carries
    Every greedy answer and every sample is its own request with ``prompt``, ``max_tokens``,
    ``temperature`` (0 for a greedy answer), ``top_k`` (an extra body field that llama.cpp, vLLM
    and SGLang read), ``seed``, ``stop`` and ``n=1``; ``top_p=1`` and ``min_p=0`` (and llama.cpp's
    ``repeat_penalty=1``) switch off the samplers the probe does not use, which some servers turn
    on by default. The seed is the probe's own ``sample_seed`` for that sample, reduced to
    ``seed % (2**31 - 1)`` because servers take a 32-bit (some a signed 32-bit) seed: the lazy
    schedule then asks for exactly the samples of the full one, each with the same seed, and a
    server that honours seeds gives the same categories for both. The server samples with its own
    sampler, not KnowMix's (``sampling.py``), so WeaklyKnown/Unknown of a server run need not equal
    a local run's; greedy answers (HighlyKnown, MaybeKnown) are the model's argmax on both.

Order and concurrency
    Requests are sent in the order the probe gives them (set-major: the prompts of one exemplar
    set share their prefix), at most ``concurrency`` at a time, so servers with prefix caching
    (vLLM APC, SGLang's radix cache, llama.cpp slots) reuse the exemplar prefix.

Checks at start-up (``ServerBackend.__init__``)
    ``GET /v1/models``: an unreachable server, a server that does not answer as OpenAI-compatible
    and a model name it does not serve each give one line that says what to check. Then a few
    tiny requests check whether ``seed`` and ``top_k`` are honoured (same seed twice gives the same
    text, other seeds give other text; top-k 1 at a high temperature gives the greedy answer).
    Where one is not, ``info.extra`` says so (``not_comparable``). The check can come out
    differently from one session to the next on the same server (llama.cpp's cache state), so it
    is not part of the run's identity: the run resumes and its note records each session's result
    (``seed_check``; ``core.server_sessions``). ``run_identity`` only finds runs made when it was.

The model's identity
    ``info.fingerprint`` is a SHA-256 of the model id and the stable fields ``/v1/models`` reports
    for it (``root``, ``owned_by``, ``max_model_len``, llama.cpp's ``meta``), never of the URL: the
    same model served from another host or port is the same run and resumes. (A server cannot be
    asked for a hash of its weights; two different models served under one id with no other
    difference are indistinguishable, so name models by what they are.)

The API key
    Read only from the environment variable the user names (``api_key_env``), sent as
    ``Authorization: Bearer``, and kept in this object alone: never in ``info``, messages, logs,
    settings or the project.

Nothing here runs unless the user gave a server URL; the only host contacted is that URL's.
Redirects are never followed (a redirect would carry the key to another host): a 3xx answer is one
line naming where the server points. The ``*_proxy`` environment variables are ignored; a proxy is
used only when the user names one (``--server-proxy URL``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Optional, Sequence

from ..errors import ModelError, SettingsError
from .base import Backend, GenRequest, ModelInfo

DEFAULT_CONCURRENCY = 8
SEED_MODULUS = 2**31 - 1  # servers take a 32-bit seed, some a signed one
RETRY_WAITS = (2.0, 4.0, 8.0, 16.0)  # 5 tries, 30 s of waiting in all
REQUEST_TIMEOUT = 300.0  # seconds for one completion (a busy server queues requests)
CHECK_TIMEOUT = 20.0  # seconds for /v1/models
_STABLE_MODEL_FIELDS = ("id", "root", "owned_by", "max_model_len", "meta")
_SEED_PROMPT = "Once upon a time, in a small village by the sea, there lived"
_TOPK_PROMPT = "Q: What is the capital of France?\nA:"


class ServerUnavailable(ModelError):
    """The server stopped answering (after the retries) or answered with an error."""


class ServerRedirected(ModelError):
    """The server answered with a redirect, which KnowMix does not follow."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: following one would send the request (and its key) where the user did not point."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise ServerRedirected(
            f"The server at {req.full_url} redirected to {newurl} (HTTP {code}), and KnowMix does not follow "
            "redirects. If that address is the server you mean, give it with --server (or in the Model step)."
        )


def make_opener(proxy: Optional[str] = None) -> urllib.request.OpenerDirector:
    """An opener that follows no redirect and uses no proxy but ``proxy`` (never the *_proxy variables)."""
    proxies = {"http": proxy, "https": proxy} if proxy else {}
    return urllib.request.build_opener(urllib.request.ProxyHandler(proxies), _NoRedirects())


def normalize_proxy(url: Optional[str]) -> Optional[str]:
    """``--server-proxy``: an http(s) URL, or None."""
    if not url:
        return None
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(
            f"The proxy address '{url}' (--server-proxy) is not an http:// or https:// URL, e.g. http://proxy:3128."
        )
    return url.strip()


def normalize_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing ``/v1`` or slash; SettingsError otherwise."""
    text = (url or "").strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(
            f"The server address '{text}' is not an http:// or https:// URL. Give the base URL of an "
            "OpenAI-compatible server, e.g. --server http://127.0.0.1:8000"
        )
    if parts.username or parts.password:
        raise SettingsError(
            "The server address holds a user name or password. Put the key in an environment variable and "
            "name it with --api-key-env instead; it is never written anywhere."
        )
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def read_api_key(env_var: Optional[str]) -> Optional[str]:
    """The key from the named environment variable; SettingsError naming the variable (never a value)."""
    if not env_var:
        return None
    key = os.environ.get(env_var)
    if not key:
        raise SettingsError(
            f"The environment variable {env_var} (--api-key-env) is not set or is empty. Set it to the server's "
            "API key in the shell that runs KnowMix, or leave out --api-key-env for a server without a key."
        )
    return key.strip()


def server_seed(seed: int) -> int:
    """The probe's 64-bit ``sample_seed`` reduced to the range servers accept."""
    return int(seed) % SEED_MODULUS


@dataclass(frozen=True)
class Patience:
    """How long a request may take (seconds) and the waits between its retries when the server is busy
    or unreachable; tests shorten them."""

    timeout: float = REQUEST_TIMEOUT
    retry_waits: tuple[float, ...] = RETRY_WAITS


class ServerBackend(Backend):
    name = "server"

    def __init__(
        self,
        url: str,
        *,
        model: Optional[str] = None,
        api_key_env: Optional[str] = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        patience: Patience = Patience(),
        check_sampling: bool = True,
        cancel: Any = None,
        proxy: Optional[str] = None,
    ) -> None:
        super().__init__()
        if concurrency < 1:
            raise SettingsError(f"--server-concurrency must be at least 1 (got {concurrency}).")
        self.url = normalize_url(url)
        self._opener = make_opener(normalize_proxy(proxy))
        self._key = read_api_key(api_key_env)
        self.concurrency = concurrency
        self.retry_waits = tuple(patience.retry_waits)
        self.timeout = patience.timeout
        self.cancel = cancel  # a core.jobs.CancelToken: a cancel stops the waits between retries
        self._pool: Optional[ThreadPoolExecutor] = None
        self._lock = threading.Lock()
        entry = self._find_model(model)
        self.model = str(entry["id"])
        stable = {k: entry[k] for k in _STABLE_MODEL_FIELDS if k in entry}
        fingerprint = hashlib.sha256(("server|" + json.dumps(stable, sort_keys=True, default=str)).encode()).hexdigest()
        self.seeded = self.top_k_honoured = True
        if check_sampling:
            self.seeded, self.top_k_honoured = self._check_sampling()
        extra: dict[str, Any] = {"server": self.url, "server_model": self.model, "concurrency": concurrency}
        if check_sampling:  # recorded per session in the run's note (core.server_sessions)
            extra["seed_check"] = {"seed": self.seeded, "top_k": self.top_k_honoured}
        identity: dict[str, bool] = {}
        if not self.seeded:
            identity["server_seeded"] = False
        if not self.top_k_honoured:
            identity["server_top_k"] = False
        if identity:
            extra["run_identity"] = identity
            extra["not_comparable"] = self.comparability_note()
        meta: dict = entry["meta"] if isinstance(entry.get("meta"), dict) else {}
        self.info = ModelInfo(
            name=self.model,
            path=self.url,
            backend=self.name,
            device="server",
            fingerprint=fingerprint,
            file_size=int(meta.get("size") or 0),
            context_length=int(entry.get("max_model_len") or meta.get("n_ctx_train") or 0) or None,
            n_params=int(meta.get("n_params") or 0) or None,
            extra=extra,
        )

    # -- messages --------------------------------------------------------------------------------
    def comparability_note(self) -> str:
        """The plain words for a server that ignores seed or top_k ("" when it honours both)."""
        missing = [name for name, ok in (("seed", self.seeded), ("top_k", self.top_k_honoured)) if not ok]
        if not missing:
            return ""
        what = " and ".join(missing)
        return (
            f"NOT COMPARABLE: the server at {self.url} ignores {what}, so the samples are not the seeded top-k "
            "samples the probe asks for: WeaklyKnown and Unknown may differ from run to run and from other "
            "backends, and the lazy schedule no longer provably equals the full one (HighlyKnown and MaybeKnown "
            "come from greedy answers and are unaffected). Use a server that honours seed and top_k "
            "(vLLM, SGLang, llama.cpp) to compare runs."
        )

    # -- HTTP ------------------------------------------------------------------------------------
    def _request(self, path: str, body: Optional[dict] = None, timeout: Optional[float] = None) -> tuple[int, str, bytes]:
        headers = {"Accept": "application/json", "User-Agent": "KnowMix"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST" if body is not None else "GET")
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), resp.read()
        except urllib.error.HTTPError as exc:
            try:
                payload = exc.read()
            except Exception:
                payload = b""
            return exc.code, exc.headers.get("Content-Type", "") if exc.headers else "", payload

    def _retrying(self, path: str, body: Optional[dict], timeout: Optional[float] = None) -> tuple[int, str, bytes]:
        """``_request`` with retries on connection errors, timeouts, 429 and 5xx."""
        waits = list(self.retry_waits)
        tries = len(waits) + 1
        last = ""
        for attempt in range(tries):
            try:
                status, ctype, payload = self._request(path, body, timeout)
                if status < 500 and status != 429:
                    return status, ctype, payload
                last = f"HTTP {status} {_snippet(payload)}".strip()
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as exc:
                last = _reason(exc)
            if attempt < tries - 1:
                self._wait(waits[attempt])
        total = sum(waits)
        raise ServerUnavailable(
            f"The server at {self.url} stopped answering ({last}) after {tries} tries over {total:.0f} s. Finished "
            "batches are saved in the project: check that the server is running and reachable, then run the same "
            "command again to resume where it stopped."
        )

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.cancel is not None and getattr(self.cancel, "cancelled", False):
                self.cancel.raise_if_cancelled("The probe")
            time.sleep(min(0.25, left))

    # -- start-up checks --------------------------------------------------------------------------
    def _find_model(self, wanted: Optional[str]) -> dict:
        where = f"{self.url}/v1/models"
        try:
            status, ctype, payload = self._request("/v1/models", timeout=CHECK_TIMEOUT)
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as exc:
            raise ModelError(
                f"Cannot reach the server at {self.url} ({_reason(exc)}). Check that the server is running, that "
                "the host and port are right, and that this machine can reach it (firewall, VPN)."
            ) from None
        if status in (401, 403):
            raise ModelError(
                f"The server at {self.url} refused the request (HTTP {status}): it needs an API key, or refused the "
                "one given. Put the key in an environment variable and name it with --api-key-env (the key itself is "
                "never written anywhere)."
            )
        data: Any = None
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            pass
        models = data.get("data") if isinstance(data, dict) else None
        if status != 200 or not isinstance(models, list) or not all(isinstance(m, dict) and "id" in m for m in models):
            got = f"HTTP {status}, {ctype.split(';')[0] or 'no content type'}"
            raise ModelError(
                f"The server at {self.url} answered {where} but not as an OpenAI-compatible server ({got}). Give the "
                "base URL of an OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, Ollama), e.g. "
                "http://host:8000, without /v1/completions."
            )
        names = [str(m["id"]) for m in models]
        if not names:
            raise ModelError(f"The server at {self.url} serves no model ({where} lists none). Load a model on the server.")
        if wanted:
            for m in models:
                if str(m["id"]) == wanted:
                    return m
            raise ModelError(
                f"The server at {self.url} does not serve a model named '{wanted}'. It offers: {', '.join(names)}. "
                "Pass one of these with --server-model."
            )
        if len(names) > 1:
            raise ModelError(
                f"The server at {self.url} serves {len(names)} models: {', '.join(names)}. Choose one with --server-model."
            )
        return models[0]

    def _complete(self, prompt: str, *, max_tokens: int, temperature: float, top_k: int, seed: Optional[int], stop) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": 1.0,
            "min_p": 0.0,
            "repeat_penalty": 1.0,  # llama.cpp's servers penalise repeats unless told not to
            "n": 1,
            "stream": False,
        }
        if temperature > 0:  # 0: the whole vocabulary (llama.cpp, vLLM 0.5+); a greedy answer needs none
            body["top_k"] = top_k
        if seed is not None:
            body["seed"] = server_seed(seed)
        if stop:
            body["stop"] = list(stop)
        status, ctype, payload = self._retrying("/v1/completions", body)
        if status in (401, 403):
            raise ServerUnavailable(f"The server at {self.url} refused a completion (HTTP {status}): check the API key.")
        if status in (400, 422) and temperature > 0 and b"temperature" in payload.lower():
            raise ServerUnavailable(
                f"The server at {self.url} refused the sampling temperature {temperature:g} (HTTP {status}: "
                f"{_snippet(payload)}). Some servers cap it (often at 2): probe with a temperature it accepts "
                "(--temperature; the paper samples at 0.5), or use a server that allows this one."
            )
        if status != 200:
            raise ServerUnavailable(
                f"The server at {self.url} refused a completion (HTTP {status}: {_snippet(payload)}). A prompt may be "
                "longer than the server's context: serve the model with a longer context, or probe with fewer shots."
            )
        try:
            data = json.loads(payload.decode("utf-8"))
            text = data["choices"][0]["text"]
        except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError):
            raise ServerUnavailable(
                f"The server at {self.url} answered /v1/completions but not as an OpenAI-compatible server ({_snippet(payload)})."
            ) from None
        text = str(text or "")
        for s in stop or ():  # a server that returns the stop string with the text
            cut = text.find(s)
            if cut >= 0:
                text = text[:cut]
        return text

    def _check_sampling(self) -> tuple[bool, bool]:
        """(seeds honoured, top_k honoured), from a few tiny requests run together."""
        jobs = {
            "a": (_SEED_PROMPT, 1.0, 0, 11),
            "a2": (_SEED_PROMPT, 1.0, 0, 11),
            "b": (_SEED_PROMPT, 1.0, 0, 12),
            "c": (_SEED_PROMPT, 1.0, 0, 13),
            "greedy": (_TOPK_PROMPT, 0.0, 0, None),
            # 2, not higher: some servers cap the temperature at 2 and would refuse the check itself
            "k1": (_TOPK_PROMPT, 2.0, 1, 21),
            "k2": (_TOPK_PROMPT, 2.0, 1, 22),
        }
        got = self._map(
            [
                partial(self._complete, p, max_tokens=8, temperature=t, top_k=k, seed=sd, stop=("\n",))
                for p, t, k, sd in jobs.values()
            ]
        )
        out = dict(zip(jobs, got))
        seeded = out["a"] == out["a2"] and not (out["a"] == out["b"] == out["c"])
        top_k = out["k1"] == out["greedy"] and out["k2"] == out["greedy"]
        return seeded, top_k

    # -- generation ------------------------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="knowmix-server")
            return self._pool

    def _map(self, calls: Sequence[Callable[[], str]]) -> list[str]:
        """Run ``calls`` (in order) at most ``concurrency`` at a time; the first error stops the rest."""
        pool = self._executor()
        futures: list[Future] = [pool.submit(call) for call in calls]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        calls: list[Callable[[], str]] = []
        shape = []
        for req in requests:
            ask = partial(self._complete, req.prompt, max_tokens=req.max_tokens, stop=req.stop)
            if req.greedy:  # a greedy answer is the same every time: ask once
                calls.append(partial(ask, temperature=0.0, top_k=0, seed=None))
                shape.append(1)
            else:
                calls += [partial(ask, temperature=req.temperature, top_k=req.top_k, seed=seed) for seed in req.seeds]
                shape.append(len(req.seeds))
        texts = self._map(calls)
        out: list[list[str]] = []
        at = 0
        for req, k in zip(requests, shape):
            answers = texts[at : at + k]
            at += k
            out.append(answers * req.n if req.greedy else answers)
            self.stats.requests += 1
            self.stats.answers += req.n
        self.stats.forward_calls += len(calls)  # one HTTP completion each
        return out

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "no answer in time"
    if isinstance(reason, socket.gaierror):
        return "host name not found"
    if isinstance(reason, (ConnectionResetError, http.client.RemoteDisconnected)):
        return "the connection was closed"
    text = str(reason).strip() or type(reason).__name__
    return text[:200]


def _snippet(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return text[:200]
