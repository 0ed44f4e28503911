"""The docker sandbox against a real Docker Engine: API, containment suite, pool, cleanup.

Skips where no engine can be reached; fails instead in CI (CI=true), see docker_fixtures.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from tests.docker_fixtures import docker_engine, sandbox_image, trialrun_containers  # noqa: F401
from trialrun.sandbox.backend import SandboxPathError, SandboxSpec, open_sandbox

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]
RUN = f"test-{uuid.uuid4().hex[:8]}"
LIMITS = dict(memory_mb=256, pids=64, disk_mb=64, tmp_mb=16, output_bytes=65536,
              command_timeout_s=3, cpus=1.0)


def spec(**over) -> SandboxSpec:
    limits = {**LIMITS, **over.pop("limits", {})}
    return SandboxSpec(backend="docker", limits=limits, **over)


@pytest.fixture
def box(sandbox_image):  # noqa: F811
    with open_sandbox(spec(), {"run": RUN, "episode": "box"}) as b:
        yield b


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind(request):
    yield
    if "sandbox_image" in request.fixturenames or trialrun_available():
        assert trialrun_containers(run=RUN) == [], "containers of this test run were left"


def leftovers(b) -> list[int]:
    """Processes in the sandbox besides PID 1 and the asking command."""
    from trialrun.sandbox.docker_backend import leftovers as parse

    r = b.exec("ps -e -o pid=,ppid=")
    assert r.ok, r
    return parse(r.stdout)


def trialrun_available() -> bool:
    from trialrun.sandbox.docker_backend import docker_available

    return docker_available()[0]


# --- the interface ------------------------------------------------------------------------
def test_exec_files_snapshot_restore(box):
    r = box.exec("echo out; echo err >&2; id -u; pwd; exit 3")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n1000\n/workspace\n", "err\n")
    assert box.exec(["printf", "%s", "a b"]).stdout == "a b"
    assert box.exec("echo $FOO", env={"FOO": "bar"}).stdout == "bar\n"
    big = "".join(f"line {i}\n" for i in range(50_000))  # > 128 KiB: travels on stdin
    box.write_file("pkg/data.txt", big)
    box.write_file("pkg/mod.py", "X = 1\n")
    assert box.read_file("pkg/data.txt") == big
    assert box.list_files() == ["pkg/data.txt", "pkg/mod.py"]
    assert box.list_files("pkg") == ["pkg/data.txt", "pkg/mod.py"]
    assert box.exec("python3 -c 'import mod; print(mod.X)'", workdir="pkg").stdout == "1\n"
    snap = box.snapshot()
    box.write_file("pkg/mod.py", "X = 2\n")
    box.write_file("new.txt", "n")
    box.restore(snap)
    assert box.list_files() == ["pkg/data.txt", "pkg/mod.py"]
    assert box.read_file("pkg/mod.py") == "X = 1\n"
    with pytest.raises(FileNotFoundError):
        box.read_file("missing.txt")
    with pytest.raises(IsADirectoryError):
        box.read_file("pkg")
    for p in ("../etc/passwd", "/etc/passwd", "pkg/../../x"):
        with pytest.raises(SandboxPathError):
            box.read_file(p)
        with pytest.raises(SandboxPathError):
            box.write_file(p, "x")


def test_setup_files_and_commands(sandbox_image):  # noqa: F811
    s = spec(files={"a.txt": "A"}, setup=["cp a.txt b.txt"], env={"GREETING": "hi"})
    with open_sandbox(s, {"run": RUN, "episode": "setup"}) as b:
        assert b.list_files() == ["a.txt", "b.txt"]
        assert b.exec("echo $GREETING").stdout == "hi\n"


def test_container_is_locked_down(box):
    from trialrun.sandbox.docker_backend import client

    attrs = client().api.inspect_container(box.id)
    hc = attrs["HostConfig"]
    assert hc["NetworkMode"] == "none"
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in hc["SecurityOpt"]
    assert hc["Memory"] == 256 << 20 and hc["MemorySwap"] == 256 << 20
    assert hc["PidsLimit"] == 64 and hc["NanoCpus"] == 10**9
    assert attrs["Config"]["User"] == "1000:1000"
    labels = attrs["Config"]["Labels"]
    assert labels["trialrun.run"] == RUN and labels["trialrun.episode"] == "box"
    assert box.name.startswith(f"trialrun-{RUN}-box-")
    r = box.exec("grep -E '^Cap(Eff|Prm)' /proc/self/status; ls /sys/class/net")
    assert "CapEff:\t0000000000000000" in r.stdout and r.stdout.split()[-1] == "lo"


# --- the containment suite ----------------------------------------------------------------
# Each case: an agent command, the violations it may be recorded as, and a check that the
# sandbox it ran in still works. After every case a neighbour episode must be unharmed.
CASES = {
    "fork_bomb": ("bash -c ':(){ :|:& };:'; sleep 2", {"pids", "timeout"}),
    "memory": ("python3 -c \"x = b'a' * (1024 ** 3)\"", {"oom"}),
    "disk_workspace": ("dd if=/dev/zero of=fill bs=1M count=1000", {"disk"}),
    "disk_tmp": ("cat /dev/zero > /tmp/fill", {"disk"}),
    "endless_loop": ("while :; do :; done", {"timeout"}),
    "print_gigabytes": ("head -c 4G /dev/zero", {"output_limit"}),
    "print_gigabytes_stderr": ("yes 0123456789abcdef >&2", {"output_limit"}),
    "sleep_past_timeout": ("sleep 3600", {"timeout"}),
    "background_escape": ("setsid sleep 3600 & sleep 3600", {"timeout"}),
    "network": ("python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), 2)\"",
                {"network"}),
    "dns": ("python3 -c \"import socket; socket.getaddrinfo('example.com', 80)\"", {"network"}),
    "write_image_root": ("echo x > /usr/bin/evil", {"read_only_fs"}),
    "write_etc": ("touch /etc/evil", {"read_only_fs"}),
}


@pytest.fixture(scope="module")
def neighbour(sandbox_image):  # noqa: F811
    with open_sandbox(spec(), {"run": RUN, "episode": "neighbour"}) as b:
        b.write_file("mine.txt", "untouched")
        yield b


@pytest.mark.parametrize("case", list(CASES))
def test_containment(case, neighbour, sandbox_image):  # noqa: F811
    cmd, allowed = CASES[case]
    with open_sandbox(spec(), {"run": RUN, "episode": case}) as b:
        t0 = time.monotonic()
        r = b.exec(cmd)
        took = time.monotonic() - t0
        assert r.violation in allowed, r
        assert took < LIMITS["command_timeout_s"] + 6, f"{case} took {took:.1f}s"
        assert len(r.stdout) + len(r.stderr) <= LIMITS["output_bytes"]
        if r.violation in ("timeout", "output_limit", "pids"):
            assert leftovers(b) == [], "processes of the command survived"
        after = b.exec("echo alive")  # the episode's own sandbox still works
        assert after.stdout == "alive\n", after
    # The neighbour episode is unharmed and sees nothing of this one.
    r = neighbour.exec("cat mine.txt; echo; ls")
    assert r.ok and r.stdout.split() == ["untouched", "mine.txt"], r
    assert leftovers(neighbour) == []
    # The host is unharmed: this process did not swallow the output (bounded memory).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 1_500_000  # KiB


def test_killing_pid1_is_contained(box):
    before = box.exec("cat /proc/1/stat").stdout.split()[21]  # PID 1's start time
    r = box.exec("kill -9 1; kill -TERM 1; kill -HUP 1; kill -INT 1; kill -ALRM 1; sleep 0.5")
    assert r.exit_code == 0
    assert box.alive()
    assert box.exec("cat /proc/1/stat").stdout.split()[21] == before


def test_host_files_are_out_of_reach(box, tmp_path):
    secret = tmp_path / f"secret-{uuid.uuid4().hex}"
    secret.write_text("host secret")
    r = box.exec(f"cat {secret}; find / -xdev -name {secret.name} 2>/dev/null; "
                 "cat /proc/1/root/etc/hostname")
    assert "host secret" not in r.stdout and secret.name not in r.stdout
    with pytest.raises(SandboxPathError):
        box.read_file(str(secret))
    with pytest.raises(SandboxPathError):
        box.read_file("../../../../" + str(secret))
    # A symlink out of the workspace reads the container's files, never the host's.
    box.exec(f"ln -s {tmp_path} link")
    with pytest.raises(FileNotFoundError):
        box.read_file(f"link/{secret.name}")


def test_image_root_stays_clean(sandbox_image):  # noqa: F811
    with open_sandbox(spec(), {"run": RUN, "episode": "w1"}) as b:
        b.exec("echo x > /tmp/t; echo x > /usr/bin/evil")
        r = b.exec("echo 'evil::0:0::/:/bin/sh' >> /etc/passwd")
        assert r.exit_code != 0 and "evil" not in b.exec("cat /etc/passwd").stdout
    with open_sandbox(spec(), {"run": RUN, "episode": "w2"}) as b:
        assert b.exec("ls /usr/bin/evil /tmp/t").exit_code != 0


def test_episode_timeout(sandbox_image):  # noqa: F811
    s = spec(limits={"episode_timeout_s": 2, "command_timeout_s": 10})
    with open_sandbox(s, {"run": RUN, "episode": "ep-timeout"}) as b:
        t0 = time.monotonic()
        r = b.exec("sleep 60")
        assert r.violation == "episode_timeout" and r.timed_out
        assert time.monotonic() - t0 < 6
        assert b.exec("true").violation == "episode_timeout"


def test_container_expires_on_its_own(sandbox_image):  # noqa: F811
    from trialrun.sandbox.docker_backend import DockerSandbox

    b = DockerSandbox(spec(), {"run": RUN, "episode": "expiry"}, sandbox_image, lifetime=2)
    try:
        deadline = time.monotonic() + 20
        while b.alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not b.alive()
        time.sleep(1)
        assert trialrun_containers(run=RUN, episode="expiry") == []  # auto-removed
    finally:
        b.close()


def test_scenario_dockerfile_is_built_once_offline(sandbox_image, tmp_path):  # noqa: F811
    from trialrun.sandbox.docker_backend import client

    (tmp_path / "hello.txt").write_text("hello\n")
    (tmp_path / "Dockerfile").write_text(
        f"FROM {sandbox_image}\nCOPY hello.txt /opt/hello.txt\nRUN python3 -c 'print(1)'\n"
        f"ENV GREETING=hi-{uuid.uuid4().hex[:6]}\n")
    s = spec(dockerfile=str(tmp_path / "Dockerfile"))
    with open_sandbox(s, {"run": RUN, "episode": "custom"}) as b:
        r = b.exec("cat /opt/hello.txt; echo $GREETING; id -u")
        assert r.stdout.startswith("hello\nhi-") and r.stdout.endswith("\n1000\n")
        tag = b.image
    t0 = time.monotonic()
    with open_sandbox(s, {"run": RUN, "episode": "custom2"}) as b:
        assert b.image == tag
    assert time.monotonic() - t0 < 5  # no second build
    client().images.remove(tag, force=True)


def test_missing_image_is_unavailable(docker_engine):  # noqa: F811
    from trialrun.sandbox.backend import SandboxUnavailable

    with pytest.raises(SandboxUnavailable, match="not found"):
        open_sandbox(spec(image="trialrun-no-such-image:0"), {"run": RUN})


# --- the warm pool ------------------------------------------------------------------------
def _wait_idle(pool, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (len(pool.idle) < n or pool.pending) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pool.idle) >= n, f"pool did not refill: {pool.errors}"


def test_pool_resets_before_reuse(sandbox_image):  # noqa: F811
    from trialrun.sandbox import pool as poolmod

    run = f"{RUN}-pool"
    s = spec(pool=2)
    try:
        with open_sandbox(s, {"run": run, "episode": "warm-up"}) as w:  # cold: pool was empty
            p = w.pool
        _wait_idle(p, 2)
        a = open_sandbox(s, {"run": run, "episode": "a"})
        a.write_file("secret.txt", "from a")
        a.exec("nohup sleep 3600 >/dev/null 2>&1 &")
        a.exec("echo x > /tmp/a; echo y > /dev/shm/a")
        a_id = a.id
        a.close()
        _wait_idle(p, 2)
        assert a_id in {b.id for b in p.idle}  # reused after reset...
        seen = set()
        for ep in ("b", "c"):
            with open_sandbox(s, {"run": run, "episode": ep}) as b:
                seen.add(b.id)
                assert b.name.startswith(f"trialrun-{run}-{ep}-")
                assert b.list_files() == []  # ...and nothing of episode a is left
                r = b.exec("ls -A /tmp /dev/shm")
                assert r.stdout.split() == ["/dev/shm:", "/tmp:"]
                assert leftovers(b) == []
        assert a_id in seen
    finally:
        poolmod.shutdown_pools()
    assert trialrun_containers(run=run) == []


def test_pool_never_reuses_a_violated_container(sandbox_image):  # noqa: F811
    from trialrun.sandbox import pool as poolmod

    run = f"{RUN}-dirty"
    s = spec(pool=1)
    try:
        a = open_sandbox(s, {"run": run, "episode": "a"})
        p = a.pool
        assert a.exec("sleep 60", timeout=1).violation == "timeout"
        a_id = a.id
        a.close()
        _wait_idle(p, 1)
        assert a_id not in {b.id for b in p.idle}
        assert trialrun_containers(run=run, episode="a") == []  # removed at once
    finally:
        poolmod.shutdown_pools()


def test_warm_pool_hides_start_up(sandbox_image):  # noqa: F811
    from trialrun.sandbox import pool as poolmod

    run = f"{RUN}-warm"
    s = spec(pool=3)
    try:
        with open_sandbox(s, {"run": run, "episode": "first"}) as first:
            p = first.pool
        _wait_idle(p, 3)
        times = []
        for i in range(3):
            t0 = time.monotonic()
            b = open_sandbox(s, {"run": run, "episode": f"e{i}"})
            b.close()
            times.append(time.monotonic() - t0)
        assert max(times) < 0.15, times
    finally:
        poolmod.shutdown_pools()
    assert trialrun_containers(run=run) == []


# --- cleanup when the runner ends badly ---------------------------------------------------
CHILD = textwrap.dedent("""
    import sys, time
    from trialrun.sandbox.backend import SandboxSpec, open_sandbox
    run = sys.argv[1]
    spec = SandboxSpec(backend="docker", pool=int(sys.argv[2]))
    boxes = [open_sandbox(spec, {"run": run, "episode": f"e{i}"}) for i in range(2)]
    print("ready", flush=True)
    if sys.argv[3] == "exit":
        sys.exit(0)  # without closing: atexit removes them
    time.sleep(600)
""")


def _child(run: str, pool: int, mode: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", CHILD, run, str(pool), mode],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def _wait_gone(run: str, timeout: float = 20) -> list:
    deadline = time.monotonic() + timeout
    while (left := trialrun_containers(run=run)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.parametrize("pool", [0, 2])
def test_sigkill_then_prune_leaves_nothing(sandbox_image, pool):  # noqa: F811
    from typer.testing import CliRunner

    from trialrun.cli_sandbox import app

    run = f"{RUN}-kill{pool}"
    p = _child(run, pool, "sleep")
    assert len(trialrun_containers(run=run)) >= 2
    live = CliRunner().invoke(app, ["prune"])  # a live run's containers are kept
    assert live.exit_code == 0 and len(trialrun_containers(run=run)) >= 2
    p.send_signal(signal.SIGKILL)
    p.wait()
    listed = CliRunner().invoke(app, ["ls"])
    assert listed.exit_code == 0 and "dead" in listed.output
    res = CliRunner().invoke(app, ["prune"])
    assert res.exit_code == 0, res.output
    assert trialrun_containers(run=run) == []


@pytest.mark.parametrize("mode, sig", [("sleep", signal.SIGTERM), ("sleep", signal.SIGINT),
                                       ("exit", None)])
def test_interrupted_runner_removes_its_containers(sandbox_image, mode, sig):  # noqa: F811
    run = f"{RUN}-{mode}-{sig or 0}"
    p = _child(run, 1, mode)
    if sig is not None:
        p.send_signal(sig)
    p.wait(30)
    assert _wait_gone(run) == []


def test_build_is_cached(sandbox_image):  # noqa: F811
    from typer.testing import CliRunner

    from trialrun.cli_sandbox import app

    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["build"])
    assert res.exit_code == 0 and "up to date" in res.output
    assert time.monotonic() - t0 < 10


def test_skips_or_fails_by_ci(monkeypatch):
    """Without an engine: skip outside CI, fail in CI."""
    from tests import docker_fixtures

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        docker_fixtures.need(False, "no engine")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        docker_fixtures.need(False, "no engine")
    assert os.environ["CI"] == ""
