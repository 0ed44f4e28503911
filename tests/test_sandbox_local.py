"""The sandbox interface, its spec, and the local backend (no Docker needed)."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from trialrun.sandbox.backend import (
    ExecResult,
    SandboxPathError,
    SandboxSpec,
    confine,
    open_sandbox,
    text_violation,
)


def local(**limits) -> SandboxSpec:
    return SandboxSpec(backend="local", limits=limits)


# --- spec and paths ---------------------------------------------------------------------
def test_spec_shorthand_and_defaults():
    assert SandboxSpec.model_validate("docker").backend == "docker"
    assert SandboxSpec.model_validate("local").backend == "local"
    spec = SandboxSpec.model_validate({"image": "x:1", "limits": {"memory_mb": 256}})
    assert spec.limits.memory_mb == 256 and spec.limits.pids == 128


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"backend": "docker", "imgae": "x"}, "imgae"),
        ({"limits": {"memroy_mb": 1}}, "memroy_mb"),
        ({"limits": {"memory_mb": 1}}, "greater than or equal"),
        ({"image": "a", "dockerfile": "b"}, "either image or dockerfile"),
        ({"backend": "local", "pool": 2}, "docker backend only"),
        ({"files": {"../x": ""}}, "leaves the workspace"),
        ("podman", "backend"),
    ],
)
def test_spec_errors_are_clear(data, needle):
    with pytest.raises(ValidationError) as e:
        SandboxSpec.model_validate(data)
    assert needle in str(e.value)


@pytest.mark.parametrize(
    "path, want",
    [("a/b.txt", "a/b.txt"), ("./a//b", "a/b"), (".", "."), ("/workspace/x", "x"),
     ("/workspace", "."), ("a\\b", "a/b")],
)
def test_confine_normalises(path, want):
    assert confine(path) == want


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "", "a\x00b", "/workspacex"])
def test_confine_refuses_escapes(path):
    with pytest.raises(SandboxPathError):
        confine(path)


def test_text_violation_only_for_failures():
    assert text_violation(1, b"", b"No space left on device") == "disk"
    assert text_violation(0, b"", b"No space left on device") is None
    assert text_violation(1, b"OSError: [Errno 101] Network is unreachable", b"") == "network"
    assert text_violation(2, b"", b"boom") is None
    assert ExecResult(exit_code=0).ok and not ExecResult(exit_code=0, violation="oom").ok


# --- local backend ----------------------------------------------------------------------
def test_local_exec_files_snapshot():
    with open_sandbox(local(), {"run": "t"}) as box:
        r = box.exec("echo out; echo err >&2; exit 3")
        assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
        assert box.exec(["printf", "%s", "a b"]).stdout == "a b"
        box.write_file("pkg/mod.py", "X = 1\n")
        assert box.read_file("pkg/mod.py") == "X = 1\n"
        assert box.list_files() == ["pkg/mod.py"]
        assert box.exec("cat mod.py", workdir="pkg").stdout == "X = 1\n"
        assert box.exec("echo $FOO", env={"FOO": "bar"}).stdout == "bar\n"
        snap = box.snapshot()
        box.write_file("pkg/mod.py", "X = 2\n")
        box.write_file("other.txt", "o")
        box.restore(snap)
        assert box.list_files() == ["pkg/mod.py"]
        assert box.read_file("pkg/mod.py") == "X = 1\n"
        with pytest.raises(FileNotFoundError):
            box.read_file("nope.txt")
        root = box.root
    assert not root.exists()  # closed: the workspace is gone


def test_local_setup_files_and_commands():
    spec = SandboxSpec(backend="local", files={"a.txt": "A"}, setup=["cp a.txt b.txt"])
    with open_sandbox(spec) as box:
        assert box.list_files() == ["a.txt", "b.txt"]


def test_local_refuses_paths_outside(tmp_path):
    with open_sandbox(local()) as box:
        for p in ("../outside.txt", "/etc/passwd"):
            with pytest.raises(SandboxPathError):
                box.read_file(p)
            with pytest.raises(SandboxPathError):
                box.write_file(p, "x")
        # A symlink planted by a command must not lead read_file out of the workspace.
        box.exec(f"ln -s {tmp_path} link")
        (tmp_path / "secret").write_text("s")
        with pytest.raises(SandboxPathError):
            box.read_file("link/secret")


def test_local_timeout_kills_the_group():
    with open_sandbox(local(command_timeout_s=1)) as box:
        t0 = time.monotonic()
        r = box.exec("sleep 30 & sleep 30")
        assert r.timed_out and r.violation == "timeout"
        assert time.monotonic() - t0 < 5


def test_local_output_cap():
    with open_sandbox(local(output_bytes=4096)) as box:
        t0 = time.monotonic()
        r = box.exec("yes")
        assert r.truncated and r.violation == "output_limit"
        assert len(r.stdout) == 4096
        assert time.monotonic() - t0 < 5


def test_local_episode_timeout():
    with open_sandbox(local(episode_timeout_s=1, command_timeout_s=10)) as box:
        r = box.exec("sleep 5")
        assert r.violation == "episode_timeout"
        assert box.exec("true").violation == "episode_timeout"


def test_local_memory_rlimit():
    with open_sandbox(local(memory_mb=64)) as box:
        r = box.exec(["python3", "-c", "x = b'a' * (512 * 1024 * 1024)"])
        assert r.exit_code != 0 and "MemoryError" in r.stderr
