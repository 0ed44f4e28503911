"""A real OpenAI-compatible HTTP server on loopback that plays scripted model turns.

    fake = FakeOpenAI().start()                  # 127.0.0.1, a free port, in a thread
    fake.script("happy", [call("find_customer", {"email": "a@b.c"}), say("hi"), finish()])
    fake.inject("happy", "429", "500")           # the next requests for "happy" fail so
    ... base_url = fake.base_url                 # http://127.0.0.1:PORT/v1
    fake.stop()

`POST /v1/chat/completions` answers by the request's `model`: a script is a list of turns,
and the turn played is the number of assistant messages already in the request, so every
episode of a run plays the same script whatever else runs at the same time. A model with no
script, or a script that has run out, finishes. Models named `loop-N` need no script: N calls
of the tool `add` with `{"k": 1}`, then finish (the benchmark's conversations).

Faults (`inject(model, *faults)`, consumed in order, one per request; `fail(model, fault)`
for every request): `"429"` (Retry-After 0), `("429", seconds)`, `"500"`, `"503"`,
`("400", message)`, `("stall", seconds)` (answers only after sleeping), `"truncated"` (a
body shorter than its Content-Length, then the connection closes), `"nonjson"`,
`"nochoices"`, `"reset"` (the connection is closed with no answer).

Usage is deterministic: prompt tokens = request bytes // 4, completion tokens = the
message's JSON length // 4. `requests` counts every request; `bodies` keeps them in order.

Run as a program (`python tests/fake_openai.py`) it serves in the foreground and prints its
base URL on the first line (the benchmark runs it in another process).
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Turn = dict[str, Any]  # an assistant message
Fault = str | tuple[str, Any]


# --- script helpers ------------------------------------------------------------------------
def call(name: str, args: dict[str, Any] | None = None, *, raw: str | None = None,
         id: str | None = None) -> dict[str, Any]:
    """One tool call; `raw` sends the arguments string as is (e.g. not JSON)."""
    return {"id": id, "type": "function", "function": {
        "name": name, "arguments": raw if raw is not None else json.dumps(args or {})}}


def turn(*calls: dict[str, Any], text: str | None = None) -> Turn:
    """An assistant message with tool calls (ids made up where missing) and optional text."""
    return {"role": "assistant", "content": text, "tool_calls": list(calls)}


def tool(name: str, args: dict[str, Any] | None = None, *, raw: str | None = None) -> Turn:
    return turn(call(name, args, raw=raw))


def say(text: str) -> Turn:
    return {"role": "assistant", "content": text}


def ask(question: str) -> Turn:
    return tool("ask_human", {"question": question})


def finish(summary: str = "done") -> Turn:
    return tool("finish", {"summary": summary})


Script = list[Turn] | Callable[[dict[str, Any]], Turn]


class FakeOpenAI:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.scripts: dict[str, Script] = {}
        self.faults: dict[str, deque[Fault]] = {}
        self.always: dict[str, Fault] = {}
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0  # seconds every answer waits (to make requests overlap)
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # --- configuration ---------------------------------------------------------------
    def script(self, model: str, turns: Script) -> FakeOpenAI:
        self.scripts[model] = turns
        return self

    def inject(self, model: str, *faults: Fault) -> FakeOpenAI:
        with self.lock:
            self.faults.setdefault(model, deque()).extend(faults)
        return self

    def fail(self, model: str, fault: Fault) -> FakeOpenAI:
        self.always[model] = fault
        return self

    @property
    def base_url(self) -> str:
        assert self.server is not None, "start() the server first"
        return f"http://{self.host}:{self.server.server_address[1]}/v1"

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(_Handler):
            owner = fake

        self.server = _Server((self.host, self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={
            "poll_interval": 0.02}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- behaviour -------------------------------------------------------------------
    def next_fault(self, model: str) -> Fault | None:
        with self.lock:
            q = self.faults.get(model)
            if q:
                return q.popleft()
        return self.always.get(model)

    def answer(self, body: dict[str, Any], size: int) -> dict[str, Any]:
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        n = sum(1 for m in messages if m.get("role") == "assistant")
        script = self.scripts.get(model)
        if script is None and model.startswith("loop-"):
            script = [tool("add", {"k": 1})] * int(model.split("-", 1)[1])
        if callable(script):
            msg = script(body)
        elif script is not None and n < len(script):
            msg = script[n]
        else:
            msg = finish()
        msg = dict(msg)
        calls = msg.get("tool_calls") or []
        if calls:
            msg["tool_calls"] = [{**c, "id": c.get("id") or f"call_{n}_{i}"}
                                 for i, c in enumerate(calls)]
        else:
            msg.pop("tool_calls", None)
        completion = len(json.dumps(msg)) // 4
        return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0,
                "model": model, "choices": [{
                    "index": 0, "message": msg,
                    "finish_reason": "tool_calls" if calls else "stop"}],
                "usage": {"prompt_tokens": size // 4, "completion_tokens": completion,
                          "total_tokens": size // 4 + completion}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up (timeouts, resets) are part of the tests


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              headers: dict[str, str] | None = None, length: int | None = None) -> None:
        head = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
                f"Content-Type: {ctype}", f"Content-Length: {length or len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps({"error": {"message": message, "type": "fake",
                                                 "code": status}}).encode(), headers=headers)

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        fake = self.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "request body is not JSON")
            return
        with fake.lock:
            fake.requests += 1
            fake.bodies.append(body)
            fake.auth.append(self.headers.get("Authorization"))
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            self._answer(fake, body, len(raw))
        finally:
            with fake.lock:
                fake.in_flight -= 1

    def _answer(self, fake: FakeOpenAI, body: dict[str, Any], size: int) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        if fake.delay:
            time.sleep(fake.delay)
        fault = fake.next_fault(str(body.get("model", "")))
        kind, arg = (fault, None) if isinstance(fault, str) or fault is None else fault
        if kind == "stall":
            time.sleep(float(arg or 1.0))
            kind = None
        if kind == "429":
            self._error(429, "rate limit exceeded", {"Retry-After": str(arg or 0)})
        elif kind in ("500", "503"):
            self._send(int(kind), b"Internal Server Error", "text/plain")
        elif kind == "400":
            self._error(400, str(arg or "bad request"))
        elif kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
        elif kind == "truncated":
            data = json.dumps(fake.answer(body, size)).encode()
            self._send(200, data[: len(data) // 2], length=len(data))
            self.close_connection = True
        elif kind == "nonjson":
            self._send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        elif kind == "nochoices":
            self._send(200, json.dumps({"id": "x", "object": "chat.completion"}).encode())
        else:
            self._send(200, json.dumps(fake.answer(body, size)).encode())


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    fake = FakeOpenAI(port=port).start()
    print(fake.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
