"""The local sandbox: a temporary directory and subprocesses, for development without Docker.

NOT a security boundary. Commands run as the calling user on the host, with the host's
network and files within reach; only timeouts, an output cap and best-effort rlimits
(address space, file size, CPU time) apply. Use `backend: docker` for agents you do not trust.
"""

from __future__ import annotations

import io
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from trialrun.registry import register
from trialrun.sandbox.backend import (
    ExecResult,
    Sandbox,
    SandboxPathError,
    SandboxSpec,
    confine,
    decode,
    text_violation,
)

# The environment commands see: nothing of the caller's secrets, only what a shell needs.
_BASE_ENV = {"LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
# This interpreter's folder first, so `python3` is the one trialrun runs on (with pytest).
_PATH = os.pathsep.join(dict.fromkeys(
    [os.path.dirname(sys.executable), *os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)]
))


@register("sandbox", "local")
class LocalSandbox(Sandbox):
    backend = "local"

    def __init__(self, spec: SandboxSpec, labels: dict[str, str] | None = None) -> None:
        super().__init__(spec, labels)
        self.root = Path(tempfile.mkdtemp(prefix="trialrun-ws-")).resolve()

    # --- paths -----------------------------------------------------------------------
    def _path(self, path: str) -> Path:
        p = (self.root / confine(path)).resolve()
        # A symlink inside the workspace may point out of it: refuse what resolves outside.
        if p != self.root and self.root not in p.parents:
            raise SandboxPathError(f"path {path!r} resolves outside the workspace")
        return p

    # --- exec ------------------------------------------------------------------------
    def exec(self, cmd, timeout=None, workdir=None, env=None) -> ExecResult:
        budget = self._command_budget(cmd, timeout)
        if isinstance(budget, ExecResult):
            return budget
        argv, t, episode_bound = budget
        lim = self.limits
        cwd = self._path(workdir or ".")
        full_env = {**_BASE_ENV, "PATH": _PATH, "HOME": str(self.root), **self.spec.env,
                    **(env or {})}

        def limit() -> None:  # runs in the child before exec
            mem = lim.memory_mb * 1024 * 1024
            fsz = lim.disk_mb * 1024 * 1024
            for res, val in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_FSIZE, fsz)):
                try:
                    resource.setrlimit(res, (val, val))
                except (ValueError, OSError):
                    pass

        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=limit,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
            return ExecResult(exit_code=127, stderr=str(e))
        out, err, truncated, timed_out = _collect(proc, t, lim.output_bytes)
        code = proc.wait()
        violation = None
        if timed_out:
            violation = "episode_timeout" if episode_bound else "timeout"
        elif truncated:
            violation = "output_limit"
        elif code == -signal.SIGXFSZ:
            violation = "disk"
        else:
            violation = text_violation(code, out, err)
        return ExecResult(
            exit_code=128 - code if code < 0 else code, stdout=decode(out), stderr=decode(err),
            truncated=truncated, timed_out=timed_out, violation=violation,
            duration_s=time.monotonic() - t0,
        )

    # --- files -----------------------------------------------------------------------
    def read_file(self, path: str) -> str:
        p = self._path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no such file: {confine(path)}")
        return p.read_text(encoding="utf-8", errors="replace")

    def write_file(self, path: str, text: str) -> None:
        p = self._path(path)
        if p == self.root:
            raise SandboxPathError("cannot write to the workspace folder itself")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")

    def list_files(self, path: str = ".") -> list[str]:
        base = self._path(path)
        if base.is_file():
            return [base.relative_to(self.root).as_posix()]
        out = []
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                out.append((Path(dirpath) / f).relative_to(self.root).as_posix())
        return sorted(out)

    def snapshot(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(self.root.iterdir()):
                tar.add(entry, arcname=entry.name)
        return buf.getvalue()

    def restore(self, data: bytes) -> None:
        for entry in self.root.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(self.root, filter="data")  # "data" refuses escapes and devices

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # Kill what commands left running in the background? They are in their own sessions;
        # the local backend does not track them (not a security boundary, see module doc).
        shutil.rmtree(self.root, ignore_errors=True)


def _collect(
    proc: subprocess.Popen, timeout: float, cap: int
) -> tuple[bytes, bytes, bool, bool]:
    """Read stdout/stderr until EOF, the deadline or the byte cap; kill the group on the latter."""
    bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    sel = selectors.DefaultSelector()
    for f in bufs:
        sel.register(f, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    total = 0
    truncated = timed_out = False
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                room = cap - total
                bufs[key.fileobj] += chunk[:room]
                total += min(len(chunk), room)
                if len(chunk) > room:
                    truncated = True
            if truncated:
                break
    finally:
        sel.close()
    if timed_out or truncated:
        _kill_group(proc)
    else:
        # The pipes closed; the process may still be finishing (or a leftover child holds
        # nothing): give it the rest of the timeout.
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
    for f in bufs:
        f.close()
    return bytes(bufs[proc.stdout]), bytes(bufs[proc.stderr]), truncated, timed_out


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
