"""The docker sandbox: one locked-down container per episode, on a local Docker Engine.

Each container runs with no network, as uid 1000, a read-only root filesystem with tmpfs
workspace and /tmp, all capabilities dropped, no-new-privileges, and limits on memory
(no swap), CPU, processes and its own lifetime. Commands run through `docker exec` under
`timeout -s KILL` plus a host-side deadline; at most `limits.output_bytes` of output are read.
After a command that timed out or flooded its output every process of the sandbox user is
killed (`kill -9 -1`, which needs no fork, so it works even when a fork bomb holds every pid).

Containers carry `trialrun.*` labels and are removed on close, at interpreter exit, on
SIGTERM/SIGHUP, by their own expiry (PID 1 exits after the episode's time, and the daemon
auto-removes the container), and by `trialrun sandbox prune` after a SIGKILL.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import signal
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from trialrun.registry import register
from trialrun.sandbox.backend import (
    WORKSPACE,
    ExecResult,
    Sandbox,
    SandboxFault,
    SandboxSpec,
    SandboxUnavailable,
    confine,
    decode,
    text_violation,
)

UID = "1000:1000"
LABEL = "trialrun.sandbox"  # every container of trialrun's has it
EXPIRY_GRACE_S = 600  # a container outlives its episode deadline by this much, then expires
_HOST_GRACE_S = 2.0  # host-side deadline beyond the in-container `timeout`
_FILE_CAP = 64 << 20  # largest file read_file returns
# Violations after which a container is never handed to another episode.
DIRTY = {"timeout", "episode_timeout", "output_limit", "oom", "pids"}
_ENV = {
    "HOME": WORKSPACE, "LANG": "C.UTF-8", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}
# PID 1: the image's init if it has one (ignores signals, reaps orphans, exits at expiry),
# else `sleep`, which as PID 1 of its namespace ignores every signal sent from inside.
_INIT = ('if [ -x /usr/local/sbin/trialrun-init ]; then exec /usr/local/sbin/trialrun-init "$0";'
         ' fi; exec sleep "$0"')
# --- the docker client ---------------------------------------------------------------
_local = threading.local()


def client():
    """A docker client for this thread (requests sessions are not shared across threads)."""
    c = getattr(_local, "client", None)
    if c is None:
        import docker  # lazy: keeps `trialrun --help` fast

        try:
            c = docker.from_env(timeout=120)
            c.ping()
        except Exception as e:  # noqa: BLE001 - any failure here means "no engine"
            raise SandboxUnavailable(
                f"no Docker engine reachable ({e}); start one with scripts/setup-docker.sh "
                "or use `sandbox: {backend: local}` for development"
            ) from e
        _local.client = c
    return c


def docker_available() -> tuple[bool, str]:
    """(True, version) if an engine answers, else (False, why)."""
    try:
        return True, client().version().get("Version", "?")
    except SandboxUnavailable as e:
        return False, str(e)


def _api_errors():
    import docker.errors
    import requests

    return (docker.errors.APIError, requests.exceptions.RequestException, OSError)


# --- labels and names ----------------------------------------------------------------
def _proc_start(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def owner() -> str:
    """host:pid:start-time of this process (computed per call: forks have their own)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_proc_start(os.getpid())}"


def owner_alive(tag: str) -> bool | None:
    """Is the process named by an owner label still running? None: it ran on another host."""
    try:
        host, pid, start = tag.rsplit(":", 2)
    except ValueError:
        return False
    if host != socket.gethostname():
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X") and fields[19] == start  # a zombie is dead


def container_labels(labels: dict[str, str] | None, expires: float) -> dict[str, str]:
    out = {LABEL: "1", "trialrun.owner": owner(), "trialrun.expires": str(int(expires))}
    for k, v in (labels or {}).items():
        out[k if "." in k else f"trialrun.{k}"] = str(v)
    return out


def container_name(labels: dict[str, str] | None) -> str:
    labels = labels or {}
    parts = [labels.get("run") or labels.get("trialrun.run") or "",
             labels.get("episode") or labels.get("trialrun.episode") or ""]
    stem = "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", p).strip("_.-") for p in parts if p)
    return f"trialrun-{stem[:150] + '-' if stem else ''}{uuid.uuid4().hex[:8]}"


# --- container configuration -----------------------------------------------------------
def create_kwargs(spec: SandboxSpec, image: str, lifetime: float) -> dict[str, Any]:
    lim = spec.limits
    return dict(
        image=image,
        command=["/bin/sh", "-c", _INIT, str(int(lifetime))],
        user=UID,
        working_dir=WORKSPACE,
        environment={**_ENV, **spec.env},
        hostname="sandbox",
        network_mode="none",
        read_only=True,
        tmpfs={
            WORKSPACE: f"rw,exec,nosuid,nodev,size={lim.disk_mb}m,uid=1000,gid=1000,mode=0755",
            "/tmp": f"rw,exec,nosuid,nodev,size={lim.tmp_mb}m,mode=1777",
        },
        shm_size="16m",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit=f"{lim.memory_mb}m",
        memswap_limit=f"{lim.memory_mb}m",  # equal: no swap
        pids_limit=lim.pids,
        nano_cpus=int(lim.cpus * 1e9),
        ulimits=_ulimits(),
        log_config={"type": "none"},
        auto_remove=True,  # once PID 1 expires, the daemon removes the container itself
        detach=True,
    )


def _ulimits():
    from docker.types import Ulimit

    return [Ulimit(name="core", soft=0, hard=0), Ulimit(name="nofile", soft=1024, hard=1024)]


# --- live containers, removed on exit --------------------------------------------------
_live: dict[str, str] = {}  # container id -> name
_live_lock = threading.Lock()
_atexit_installed = False
_signals_installed = False


def _track(cid: str, name: str) -> None:
    with _live_lock:
        _live[cid] = name
    install_cleanup_handlers()


def install_cleanup_handlers() -> None:
    """Remove live containers at exit and on SIGTERM/SIGHUP.

    Idempotent. Signal handlers can only be set from the main thread: a runner that opens
    sandboxes in worker threads calls this once from the main thread (importing this module
    there does it too). A handler someone else set is left alone.
    """
    global _atexit_installed, _signals_installed
    with _live_lock:
        if not _atexit_installed:
            _atexit_installed = True
            atexit.register(remove_all_live)
        if _signals_installed or threading.current_thread() is not threading.main_thread():
            return
        _signals_installed = True
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_signal)


def _untrack(cid: str) -> None:
    with _live_lock:
        _live.pop(cid, None)


def _on_signal(signum, frame) -> None:  # noqa: ARG001
    remove_all_live()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def remove_all_live() -> None:
    """Remove every container this process started and has not removed yet."""
    from trialrun.sandbox import pool

    pool.shutdown_pools()
    with _live_lock:
        ids = list(_live)
    for cid in ids:
        remove_container(cid)


def remove_container(cid: str) -> None:
    try:
        client().api.remove_container(cid, force=True, v=True)
    except Exception:  # noqa: BLE001 - already gone (auto-remove), or the daemon is down
        pass
    _untrack(cid)


# --- exec over a hijacked connection ---------------------------------------------------
@dataclass
class RawExec:
    exit_code: int
    stdout: bytes
    stderr: bytes
    truncated: bool
    timed_out: bool
    duration_s: float


class _Hijacked:
    """The stream of one exec: docker's multiplexed frames (8-byte header, then payload)."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock = sock
        self.buf = bytearray(buffered)

    def _fill(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        ready, _, _ = select.select([self.sock], [], [], left)
        if not ready:
            raise TimeoutError
        chunk = self.sock.recv(262144)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def frames(self, deadline: float):
        """Yield (stream, payload) until EOF; raise TimeoutError at the deadline."""
        while True:
            while len(self.buf) < 8:
                if not self._fill(deadline):
                    return
            stream, size = struct.unpack(">BxxxL", self.buf[:8])
            while len(self.buf) < 8 + size:
                if not self._fill(deadline):
                    return
            payload = bytes(self.buf[8:8 + size])
            del self.buf[:8 + size]
            yield stream, payload

    def send_stdin(self, data: bytes) -> None:
        self.sock.setblocking(True)
        self.sock.sendall(data)
        self.sock.shutdown(socket.SHUT_WR)  # EOF on the process's stdin

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _start_exec(exec_id: str, stdin: bool) -> _Hijacked:
    """POST /exec/{id}/start and hijack the connection (raw socket on a local engine)."""
    api = client().api
    path = getattr(api.get_adapter(api.base_url), "socket_path", None)
    if path:
        body = json.dumps({"Detach": False, "Tty": False}).encode()
        head = (f"POST /v{api._version}/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
                "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(path)
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise SandboxFault("docker closed the exec stream before answering")
            data += chunk
        header, rest = data.split(b"\r\n\r\n", 1)
        status = header.split(b" ", 2)[1]
        if status not in (b"101", b"200"):
            s.close()
            raise SandboxFault(f"exec start failed: {header.decode(errors='replace')}")
        return _Hijacked(s, rest)
    # Remote engine (tcp/ssh): docker-py's socket.
    sock = api.exec_start(exec_id, socket=True)
    raw = getattr(sock, "_sock", sock)
    return _Hijacked(raw)


@register("sandbox", "docker")
class DockerSandbox(Sandbox):
    backend = "docker"

    @classmethod
    def open(cls, spec: SandboxSpec, labels: dict[str, str] | None = None) -> Sandbox:
        from trialrun.sandbox.pool import acquire  # warm containers when spec.pool > 0

        return acquire(spec, labels)

    def __init__(self, spec: SandboxSpec, labels: dict[str, str] | None, image: str,
                 lifetime: float | None = None, name: str | None = None) -> None:
        super().__init__(spec, labels)
        self.image = image
        self.lifetime = lifetime or spec.limits.episode_timeout_s + EXPIRY_GRACE_S
        self.name = name or container_name(labels)
        self._lock = threading.Lock()
        self.dirty = False  # a violation happened: never reuse this container
        self.pool: Any = None  # the Pool this container returns to on close
        self._counters: dict[str, int] = {}
        self._cgroup_files: dict[str, str] | None = None
        errors = _api_errors()
        t0 = time.monotonic()
        self.expires = time.time() + self.lifetime
        try:
            c = client().containers.create(
                name=self.name, labels=container_labels(labels, self.expires),
                **create_kwargs(spec, image, self.lifetime),
            )
        except errors as e:
            if "No such image" in str(e) or getattr(e, "status_code", 0) == 404:
                raise SandboxUnavailable(
                    f"docker image {image!r} not found; build it with `trialrun sandbox build`"
                ) from e
            raise SandboxFault(f"could not create sandbox container: {e}") from e
        self.id: str = c.id
        _track(self.id, self.name)
        try:
            client().api.start(self.id)
        except errors as e:
            self.close()
            raise SandboxFault(f"could not start sandbox container: {e}") from e
        self.start_s = time.monotonic() - t0
        self._cgroup_files = _host_cgroup_files(self.id, spec.limits.pids)
        self.begin_episode(labels)

    def begin_episode(self, labels: dict[str, str] | None) -> None:
        """Start the episode clock (again, for a container handed out by the pool)."""
        self.labels = dict(labels or {})
        self.started = time.monotonic()
        self._counters = self._read_counters() or {}

    # --- exec ------------------------------------------------------------------------
    def _raw(self, argv: list[str], timeout: float, cap: int, stdin: bytes | None = None,
             workdir: str = WORKSPACE, env: dict[str, str] | None = None) -> RawExec:
        """One exec: argv under `timeout -s KILL`, at most `cap` bytes of output kept."""
        errors = _api_errors()
        api = client().api
        t0 = time.monotonic()
        wrapped = ["timeout", "-s", "KILL", f"{timeout:.3f}", *argv]
        try:
            exec_id = api.exec_create(
                self.id, wrapped, stdin=stdin is not None, user=UID, workdir=workdir,
                environment=env or None,
            )["Id"]
            stream = _start_exec(exec_id, stdin is not None)
        except errors as e:
            raise self._fault("exec", e) from e
        out, err = bytearray(), bytearray()
        total, truncated, timed_out = 0, False, False
        try:
            if stdin is not None:
                stream.send_stdin(stdin)
            for kind, payload in stream.frames(t0 + timeout + _HOST_GRACE_S):
                room = cap - total
                (err if kind == 2 else out).extend(payload[:room])
                total += min(len(payload), room)
                if len(payload) > room:
                    truncated = True
                    break
        except TimeoutError:
            timed_out = True
        except OSError as e:
            stream.close()
            raise self._fault("exec stream", e) from e
        finally:
            stream.close()
        if timed_out or truncated:
            self.kill_all()
        code = None
        for _ in range(50):  # the exit code lands a moment after the stream closes
            try:
                info = api.exec_inspect(exec_id)
            except errors as e:
                raise self._fault("exec inspect", e) from e
            if not info.get("Running"):
                code = info.get("ExitCode")
                break
            time.sleep(0.01)
        duration = time.monotonic() - t0
        if code is None:
            code = 137
        if code in (124, 137) and duration >= timeout - 0.05:
            timed_out = True
        return RawExec(code, bytes(out), bytes(err), truncated, timed_out, duration)

    def _fault(self, what: str, e: BaseException) -> SandboxFault:
        return SandboxFault(f"sandbox {what} failed on container {self.name}: {e}")

    def kill_all(self) -> None:
        """SIGKILL every process of the sandbox user except PID 1 (no fork needed)."""
        api = client().api
        for _ in range(2):
            try:
                # The shell's builtin kill: no fork, and no procps needed in the image.
                eid = api.exec_create(self.id, ["sh", "-c", "kill -9 -1"], user=UID)["Id"]
                api.exec_start(eid)
            except Exception:  # noqa: BLE001 - best effort; a broken box is not reused
                self.dirty = True

    def exec(self, cmd, timeout=None, workdir=None, env=None) -> ExecResult:
        budget = self._command_budget(cmd, timeout)
        if isinstance(budget, ExecResult):
            return budget
        argv, t, episode_bound = budget
        lim = self.limits
        wd = self._abs(workdir or ".")
        with self._lock:
            r = self._raw(argv, t, lim.output_bytes, workdir=wd, env=env)
            violation = self._classify(r, episode_end=episode_bound)
            if violation == "pids":  # a fork bomb may still hold every pid: end it
                self.kill_all()
                self._counters = self._read_counters() or self._counters
        if violation in DIRTY:
            self.dirty = True
        return ExecResult(
            exit_code=r.exit_code, stdout=decode(r.stdout), stderr=decode(r.stderr),
            truncated=r.truncated, timed_out=r.timed_out, violation=violation,
            duration_s=r.duration_s,
        )

    def _classify(self, r: RawExec, episode_end: bool) -> str | None:
        if r.timed_out or r.truncated:
            # The command was killed: take what it did to the counters as the new baseline.
            self._counters = self._read_counters() or self._counters
            if r.timed_out:
                return "episode_timeout" if episode_end else "timeout"
            return "output_limit"
        # Counters are cheap on a local engine (host cgroup files); through exec only when
        # the command failed, to keep the happy path at one exec.
        if self._cgroup_files is not None or r.exit_code != 0:
            new = self._read_counters()
            if new:
                old, self._counters = self._counters, new
                if new.get("oom", 0) > old.get("oom", 0):
                    return "oom"
                if new.get("pids", 0) > old.get("pids", 0):
                    return "pids"
        return text_violation(r.exit_code, r.stdout, r.stderr)

    def _read_counters(self) -> dict[str, int] | None:
        """Cgroup event counters: OOM kills and forks refused at the pids limit."""
        if self._cgroup_files is not None:
            texts = []
            for f in self._cgroup_files.values():
                try:
                    with open(f) as fh:
                        texts.append(fh.read())
                except OSError:
                    self._cgroup_files = None
                    break
            else:
                return _parse_counters("\n".join(texts))
        r = self._raw(["cat", *_CGROUP_COUNTER_FILES], 5.0, 65536)
        return _parse_counters(decode(r.stdout)) if r.stdout else None

    # --- files -----------------------------------------------------------------------
    def _abs(self, path: str) -> str:
        rel = confine(path)
        return WORKSPACE if rel == "." else f"{WORKSPACE}/{rel}"

    def _checked(self, r: RawExec, what: str) -> RawExec:
        if r.timed_out:
            raise SandboxFault(f"{what} timed out in container {self.name}")
        return r

    def read_file(self, path: str) -> str:
        p = self._abs(path)
        with self._lock:
            r = self._checked(self._raw(["cat", "--", p], 60, _FILE_CAP), "read_file")
        if r.exit_code != 0:
            msg = decode(r.stderr).strip().removeprefix("cat: ")
            if "Is a directory" in msg:
                raise IsADirectoryError(f"{confine(path)} is a directory")
            raise FileNotFoundError(msg or f"cannot read {confine(path)}")
        return decode(r.stdout)

    def write_file(self, path: str, text: str) -> None:
        p = self._abs(path)
        if p == WORKSPACE:
            raise IsADirectoryError("cannot write to the workspace folder itself")
        script = 'mkdir -p -- "${1%/*}" && cat > "$1"'
        with self._lock:
            r = self._checked(
                self._raw(["sh", "-c", script, "sh", p], 60, 65536, stdin=text.encode()),
                "write_file",
            )
        if r.exit_code != 0:
            raise OSError(decode(r.stderr).strip() or f"cannot write {confine(path)}")

    def list_files(self, path: str = ".") -> list[str]:
        rel = confine(path)
        with self._lock:
            r = self._checked(
                self._raw(["find", rel, "-type", "f"], 60, 64 << 20), "list_files"
            )
        if r.exit_code != 0 and not r.stdout:
            raise FileNotFoundError(decode(r.stderr).strip() or f"no such path: {rel}")
        return sorted(p.removeprefix("./") for p in decode(r.stdout).splitlines() if p)

    def snapshot(self) -> bytes:
        cap = (self.limits.disk_mb << 20) * 2 + (1 << 20)
        with self._lock:
            r = self._checked(
                self._raw(["tar", "-C", WORKSPACE, "--numeric-owner", "-cf", "-", "."], 300, cap),
                "snapshot",
            )
        if r.exit_code != 0 or r.truncated:
            raise SandboxFault(f"snapshot failed: {decode(r.stderr)[-500:]}")
        return r.stdout

    def restore(self, data: bytes) -> None:
        script = f"find {WORKSPACE} -mindepth 1 -delete && tar -C {WORKSPACE} -xf -"
        with self._lock:
            r = self._checked(self._raw(["sh", "-c", script], 300, 65536, stdin=data), "restore")
        if r.exit_code != 0:
            raise SandboxFault(f"restore failed: {decode(r.stderr)[-500:]}")

    def reset(self) -> bool:
        """Make the container as new for another episode; False if that cannot be assured."""
        if self.dirty:
            return False
        self.kill_all()
        script = (f"find {WORKSPACE} /tmp /dev/shm -mindepth 1 -delete 2>/dev/null; "
                  f"ls -A {WORKSPACE} /tmp /dev/shm; echo ---; ps -e -o pid=,ppid=")
        try:
            with self._lock:
                r = self._raw(["sh", "-c", script], 30, 65536)
        except SandboxFault:
            return False
        listing, _, ps = decode(r.stdout).partition("---")
        files = [s for s in listing.split() if not s.endswith(":")]
        return not r.timed_out and not files and not leftovers(ps)

    def alive(self) -> bool:
        try:
            state = client().api.inspect_container(self.id)["State"]
        except Exception:  # noqa: BLE001
            return False
        return bool(state.get("Running"))

    def rename(self, name: str) -> None:
        client().api.rename(self.id, name)
        self.name = name

    def close(self) -> None:
        """End the episode: give the container back to its pool, or remove it."""
        if self.closed:
            return
        self.closed = True
        if self.pool is not None and self.pool.release(self):
            return
        remove_container(self.id)

    def destroy(self) -> None:
        """Remove the container, pooled or not."""
        self.closed = True
        self.pool = None
        remove_container(self.id)


def leftovers(ps_output: str) -> list[int]:
    """Pids in `ps -e -o pid=,ppid=` output that are neither PID 1 nor the one exec asking.

    An exec's processes descend from a process whose parent is outside the namespace (ppid
    0); what an earlier command left behind was reparented to PID 1 or is a second ppid-0
    tree. So: anything with ppid 1, and every ppid-0 tree but the newest (the asker's).
    """
    rows = [tuple(int(x) for x in line.split()) for line in ps_output.splitlines()
            if len(line.split()) == 2]
    roots = sorted(pid for pid, ppid in rows if ppid == 0 and pid != 1)
    return [pid for pid, ppid in rows if ppid == 1] + roots[:-1]


# --- cgroup counters -------------------------------------------------------------------
_CGROUP_COUNTER_FILES = [
    "/sys/fs/cgroup/memory/memory.oom_control",  # v1: "oom_kill N"
    "/sys/fs/cgroup/pids/pids.events",  # v1: "max N"
    "/sys/fs/cgroup/memory.events",  # v2: "oom_kill N"
    "/sys/fs/cgroup/pids.events",  # v2: "max N"
]


def _parse_counters(text: str) -> dict[str, int]:
    out = {"oom": 0, "pids": 0}
    for line in text.splitlines():
        key, _, val = line.partition(" ")
        if key == "oom_kill" and val.strip().isdigit():
            out["oom"] += int(val)
        elif key == "max" and val.strip().isdigit():
            out["pids"] += int(val)
    return out


def _host_cgroup_files(cid: str, pids_limit: int) -> dict[str, str] | None:
    """The container's cgroup counter files as seen from this host, if it can see them.

    Docker's cgroupfs driver puts a container at docker/<id>, the systemd driver at
    system.slice/docker-<id>.scope; v1 has one tree per controller, v2 one tree.
    """
    for sub in (f"docker/{cid}", f"system.slice/docker-{cid}.scope"):
        v1 = {"oom": f"/sys/fs/cgroup/memory/{sub}/memory.oom_control",
              "pids": f"/sys/fs/cgroup/pids/{sub}/pids.events"}
        v2 = {"oom": f"/sys/fs/cgroup/{sub}/memory.events",
              "pids": f"/sys/fs/cgroup/{sub}/pids.events"}
        if _own_cgroup(v1, f"/sys/fs/cgroup/pids/{sub}/pids.max", pids_limit):
            return v1
        if _own_cgroup(v2, f"/sys/fs/cgroup/{sub}/pids.max", pids_limit):
            return v2
    return None


def _own_cgroup(files: dict[str, str], limit_file: str, pids_limit: int) -> bool:
    """Do these files exist and belong to a cgroup with our pid limit (not a look-alike)?"""
    try:
        with open(limit_file) as f:
            if f.read().strip() != str(pids_limit):
                return False
        for p in files.values():
            with open(p):
                pass
    except OSError:
        return False
    return True


install_cleanup_handlers()
