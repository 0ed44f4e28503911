"""One seam to a chat-completions endpoint: `ModelClient.complete(request) -> (response, call)`.

Everything between an LLM agent and an OpenAI-compatible HTTP API lives here: the request
body and its replay key, built incrementally so that a turn costs the same at turn 200 as at
turn 2; the httpx client; retries of endpoint faults; a per-endpoint concurrency limit and
rate limit; and the replay tape (`trialrun.agents.tape`), which answers from recorded calls
with no HTTP at all.

The replay key of a request (`request_key`) is the SHA-256 of its normalised form: the
canonical JSON (sorted keys, no spaces, UTF-8) of `{"model", "params", "tools"}`, then, for
each message, a newline and the message's canonical JSON. `params` are the sampling settings
sent with the request (temperature, top_p, max_tokens, seed, tool_choice, ...); the API key,
the base URL and timeouts are not part of it. `Conversation` computes the same key with a
running hash, and the body by joining per-message encodings it keeps.

Endpoint faults, retried with exponential backoff and jitter (`backoff_s * 2**n`, capped at
`max_backoff_s`, times a factor in [0.5, 1) drawn from a private seeded RNG: it only moves wall
time, never a decision): HTTP 429 (after `Retry-After` / `retry-after-ms` when given, up to
`max_retry_after_s`), 408, 409, 5xx, timeouts, connection errors (refused, reset, a body cut
short), and a 2xx body that is not JSON or has no `choices[0].message`. When they persist,
`AgentError` (an infrastructure error of the run, never the agent's failure). Other 4xx are
not retried: `AgentError` with the server's message. Messages never contain the API key.

Concurrency and rate limits are per endpoint (base URL + model) and shared by every episode
of the process's event loop, with one HTTP client (kept-alive connections) that closes when
the last episode using it closes; the first client to reach an endpoint sets the limits.
"""

from __future__ import annotations

import hashlib
import json
import random
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx
from anyio.lowlevel import RunVar
from pydantic import BaseModel, ConfigDict, Field

from trialrun.agents.base import AgentError
from trialrun.agents.tape import TapeMiss, current_episode, current_tape
from trialrun.secrets import mask
from trialrun.trajectory import ModelCall

__all__ = ["ChatRequest", "Conversation", "ModelClient", "Prices", "canonical", "request_key"]

RETRIED_STATUS = frozenset({408, 409, 429})


class Prices(BaseModel):
    """Dollars per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_1m: float = Field(0.0, ge=0, description="$ per 1M prompt tokens")
    output_per_1m: float = Field(0.0, ge=0, description="$ per 1M completion tokens")

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_1m + tokens_out * self.output_per_1m) / 1e6


def canonical(obj: Any) -> bytes:
    """The canonical JSON of `obj`: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def _header(model: str, tools: list[dict[str, Any]], params: dict[str, Any]) -> bytes:
    return canonical({"model": model, "params": params, "tools": tools})


def request_key(model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                params: dict[str, Any]) -> str:
    """The replay key of a request, from scratch (`Conversation` keeps it incrementally)."""
    h = hashlib.sha256(_header(model, tools, params))
    for m in messages:
        h.update(b"\n")
        h.update(canonical(m))
    return h.hexdigest()


@dataclass
class ChatRequest:
    """One request, ready to send: its body, its replay key and what is new in it."""

    model: str
    key: str
    body: bytes
    new_messages: list[dict[str, Any]]  # the messages added since the previous request
    index: int  # the n-th request of the conversation, from 0


class Conversation:
    """The messages of one conversation and the requests made of them.

    Each message is encoded once, when added; a request joins the encodings and copies the
    running hash, so the harness's work per turn does not grow with the conversation (the
    bytes sent do, as the protocol wants)."""

    def __init__(self, model: str, tools: list[dict[str, Any]], params: dict[str, Any]):
        self.model = model
        self.messages: list[dict[str, Any]] = []
        self._parts: list[bytes] = []
        self._hash = hashlib.sha256(_header(model, tools, params))
        rest = canonical({"model": model, **({"tools": tools} if tools else {}), **params})
        self._head = b'{"messages":['
        self._tail = b"]," + rest[1:]
        self._sent = 0
        self._calls = 0

    def add(self, message: dict[str, Any]) -> None:
        enc = canonical(message)
        self.messages.append(message)
        self._parts.append(enc)
        self._hash.update(b"\n")
        self._hash.update(enc)

    def request(self) -> ChatRequest:
        req = ChatRequest(model=self.model, key=self._hash.hexdigest(),
                          body=self._head + b",".join(self._parts) + self._tail,
                          new_messages=self.messages[self._sent:], index=self._calls)
        self._sent = len(self.messages)
        self._calls += 1
        return req


# --- per-endpoint state, shared by the episodes of one event loop ---------------------------
@dataclass
class _Endpoint:
    """The limits of one endpoint and the HTTP client its episodes share (kept-alive
    connections: no TCP or TLS handshake per episode). The client closes when the last
    episode using it closes."""

    semaphore: anyio.Semaphore
    interval: float  # seconds between request starts; 0: no rate limit
    connections: int
    next_start: float = 0.0
    http: httpx.AsyncClient | None = None
    users: int = 0

    async def pace(self) -> None:
        if not self.interval:
            return
        now = anyio.current_time()
        start = max(now, self.next_start)
        self.next_start = start + self.interval
        if start > now:
            await anyio.sleep(start - now)

    def acquire(self) -> httpx.AsyncClient:
        self.users += 1
        if self.http is None:
            self.http = httpx.AsyncClient(
                verify=_shared_ssl(), follow_redirects=False,
                limits=httpx.Limits(max_connections=None,
                                    max_keepalive_connections=self.connections))
        return self.http

    async def release(self) -> None:
        self.users -= 1
        if self.users <= 0 and self.http is not None:
            http, self.http = self.http, None
            await http.aclose()


_endpoints: RunVar[dict[str, _Endpoint]] = RunVar("trialrun_model_endpoints")


def _endpoint(name: str, concurrency: int, rps: float | None) -> _Endpoint:
    table = _endpoints.get(None)
    if table is None:
        table = {}
        _endpoints.set(table)
    ep = table.get(name)
    if ep is None:
        ep = table[name] = _Endpoint(anyio.Semaphore(concurrency), 1.0 / rps if rps else 0.0,
                                     concurrency)
    return ep


_ssl_context: ssl.SSLContext | None = None


def _shared_ssl() -> ssl.SSLContext:
    """One TLS context per process: building one costs ~20 ms, a client with it ~0.06 ms."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


def _valid(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    choices = data.get("choices")
    return (isinstance(choices, list) and bool(choices) and isinstance(choices[0], dict)
            and isinstance(choices[0].get("message"), dict))


def _retry_after(r: httpx.Response) -> float | None:
    ms = r.headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = r.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _usage(data: dict[str, Any]) -> tuple[int, int]:
    u = data.get("usage")
    if not isinstance(u, dict):
        return 0, 0

    def num(k: str) -> int:
        v = u.get(k)
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0

    return num("prompt_tokens"), num("completion_tokens")


class ModelClient:
    """A chat-completions client for one endpoint (base URL + model), for one episode.

    `complete(request)` returns the response body and its `ModelCall` record. With a tape
    installed (`tape`, or the `current_tape` context variable the runner sets), a recorded
    response is served with no HTTP request; a miss raises `TapeMiss` unless the tape says
    `live_on_miss`, in which case the call goes live and is added to the tape."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 timeout_s: float = 60.0, max_attempts: int = 5, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0, max_retry_after_s: float = 60.0,
                 concurrency: int = 8, requests_per_second: float | None = None,
                 prices: Prices | None = None, tape: Any = None,
                 jitter_seed: int = 0) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self._key = api_key or None  # held for the Authorization header only
        self.timeout_s = timeout_s
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.concurrency = max(1, concurrency)
        self.rps = requests_per_second
        self.prices = prices or Prices()
        self.tape = tape
        self._jitter = random.Random(jitter_seed)  # wall time only: never reaches a decision
        self._ep: _Endpoint | None = None
        self._http: httpx.AsyncClient | None = None
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            self._headers["Authorization"] = f"Bearer {self._key}"
        self.requests = 0  # HTTP requests this client sent, retries included

    # --- the seam ----------------------------------------------------------------------
    async def complete(self, req: ChatRequest) -> tuple[dict[str, Any], ModelCall]:
        tape = current_tape.get()
        if tape is None:
            tape = self.tape
        episode = current_episode()
        if tape is not None:
            hit = tape.lookup(req.key, episode)
            if hit is not None:
                return hit.response, hit
            if not tape.live_on_miss:
                raise TapeMiss(f"replay tape has no recorded response for model call "
                               f"#{req.index} of episode {episode or '?'} ({self.model}, "
                               f"request key {req.key[:16]}): the conversation diverged from "
                               "the recording, or the call was never recorded")
        data, latency, attempts = await self._post(req)
        tokens_in, tokens_out = _usage(data)
        call = ModelCall.model_construct(
            key=req.key, index=req.index, model=req.model, messages=req.new_messages,
            response=data, latency_ms=latency * 1e3, tokens_in=tokens_in,
            tokens_out=tokens_out, cost=self.prices.cost(tokens_in, tokens_out),
            attempts=attempts)
        if tape is not None:
            tape.add(call, episode)
        return data, call

    async def aclose(self) -> None:
        if self._ep is not None:
            ep, self._ep = self._ep, None
            self._http = None
            await ep.release()

    # --- HTTP --------------------------------------------------------------------------
    def _client(self) -> tuple[_Endpoint, httpx.AsyncClient]:
        if self._ep is None or self._http is None:
            self._ep = _endpoint(f"{self.base_url} {self.model}", self.concurrency, self.rps)
            self._http = self._ep.acquire()
        return self._ep, self._http

    def _safe(self, text: str) -> str:
        """Never let the key out, whatever a server echoes back."""
        return text.replace(self._key, "***") if self._key else text

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * (
            0.5 + self._jitter.random() / 2)

    async def _post(self, req: ChatRequest) -> tuple[dict[str, Any], float, int]:
        ep, http = self._client()
        where = f"model endpoint {mask(self.base_url)} ({self.model})"
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            delay = self._backoff(attempt)
            try:  # uncontended: no trip through the event loop
                ep.semaphore.acquire_nowait()
            except anyio.WouldBlock:
                await ep.semaphore.acquire()
            try:
                await ep.pace()
                self.requests += 1
                t0 = time.perf_counter()
                try:
                    r = await http.post(self.url, content=req.body, headers=self._headers,
                                        timeout=self.timeout_s)
                    latency = time.perf_counter() - t0
                except httpx.TimeoutException:
                    last = f"timed out after {self.timeout_s:g} s"
                    r = None
                except httpx.TransportError as e:
                    last = f"connection failed: {type(e).__name__}: {self._safe(str(e))}"
                    r = None
            finally:
                ep.semaphore.release()
            if r is not None:
                status = r.status_code
                if 200 <= status < 300:
                    try:
                        data = json.loads(r.content)
                    except ValueError:
                        last = f"HTTP {status} with a body that is not JSON: " \
                               f"{self._safe(r.text[:120])!r}"
                    else:
                        if _valid(data):
                            return data, latency, attempt
                        last = f"HTTP {status} without choices[0].message: " \
                               f"{self._safe(_message(r))}"
                elif status in RETRIED_STATUS or status >= 500:
                    last = f"HTTP {status}: {self._safe(_message(r))}"
                    wait = _retry_after(r)
                    if wait is not None and status == 429:
                        delay = min(wait, self.max_retry_after_s)
                else:
                    raise AgentError(f"{where}: HTTP {status}: {self._safe(_message(r))} "
                                     "(not retried)")
            if attempt < self.max_attempts:
                await anyio.sleep(delay)
        raise AgentError(f"{where}: gave up after {self.max_attempts} attempt(s); "
                         f"last: {last}")


def _message(r: httpx.Response) -> str:
    """The server's error message: OpenAI's `{"error": {"message"}}`, vLLM's flat
    `{"message"}`, FastAPI's `{"detail"}`, else the start of the body."""
    try:
        body = json.loads(r.content)
    except ValueError:
        return r.text[:200].strip() or r.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        for k in ("message", "detail", "error"):
            if isinstance(body.get(k), str):
                return body[k][:500]
    return r.text[:200]
