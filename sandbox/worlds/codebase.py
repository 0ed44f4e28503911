"""The codebase world: fix a seeded bug in a small real Python repository, in a sandbox.

Each task names a bundled repository (`codebase_repos/<repo>/src`) and one of its seeded
bugs (`bugs.yaml`: the issue text, the edit that plants the bug, the hidden tests that must
go from failing to passing). The agent gets the issue and tools to list, read, write, edit
and patch files, run commands and run the visible tests, all inside the episode's sandbox
(docker by default). When the agent finishes, the world grades as SWE-bench does: the
repository's tests are reset to their originals, the hidden tests are added, and the whole
suite runs inside the container. Resolved = every FAIL_TO_PASS test passes and every
PASS_TO_PASS test (all others) still passes.
"""

from __future__ import annotations

import base64
import io
import re
import shlex
import tarfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from trialrun.sandbox.backend import (
    ExecResult,
    Sandbox,
    SandboxPathError,
    SandboxSpec,
    confine,
    open_sandbox,
    sandbox_labels,
)
from trialrun.sandbox.world import ToolError, Verdict, World, WorldStatus, register_world
from trialrun.trajectory import Decision, Observation, ToolResult, ToolSpec

REPOS_DIR = Path(__file__).parent / "codebase_repos"
# The agent's test command; grading uses an isolated one (see `_grade`).
TEST_CMD = "python3 -m pytest -q -p no:cacheprovider --tb=short -rfE"
GRADE_CMD = ('python3 -I -m pytest -p no:cacheprovider --noconftest -c /dev/null '
             '--rootdir="$PWD" -o pythonpath="$PWD" -q -rA --tb=no tests')
_TIMING = re.compile(r" in \d+(\.\d+)?s( \([0-9:]+\))?")  # pytest's run time: not replayable
_RESULT_LINE = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED)\s+(\S+)", re.M)
SECONDS = {"list_files": 5, "read_file": 10, "write_file": 30, "edit_file": 20,
           "apply_patch": 30, "run": 10, "run_tests": 20}


# --- the bundled repositories ------------------------------------------------------------
class Seed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    find: str
    replace: str


class Bug(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    issue: str
    seed: Seed
    fail_to_pass: list[str] = Field(min_length=1)


class RepoManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    bugs: list[Bug]


@dataclass
class Repo:
    name: str
    description: str
    files: dict[str, str]  # the correct repository, visible tests included
    hidden: dict[str, str]  # hidden test files, added only for grading
    bugs: dict[str, Bug] = field(default_factory=dict)

    def seeded(self, bug: Bug) -> dict[str, str]:
        """The repository with `bug` planted (its find text must occur exactly once)."""
        files = dict(self.files)
        text = files[bug.seed.file]
        if text.count(bug.seed.find) != 1:
            raise ValueError(f"{self.name}/{bug.id}: seed text must occur exactly once in "
                             f"{bug.seed.file}")
        files[bug.seed.file] = text.replace(bug.seed.find, bug.seed.replace)
        return files

    def test_files(self) -> dict[str, str]:
        return {p: t for p, t in self.files.items() if p.startswith("tests/")}


def _read_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


@cache
def load_repo(name: str) -> Repo:
    root = REPOS_DIR / name
    if not (root / "bugs.yaml").is_file():
        raise LookupError(f"unknown repo {name!r}; known: {', '.join(repo_names())}")
    manifest = RepoManifest.model_validate(yaml.safe_load((root / "bugs.yaml").read_text()))
    return Repo(name, manifest.description, _read_tree(root / "src"), _read_tree(root / "hidden"),
                {b.id: b for b in manifest.bugs})


def repo_names() -> list[str]:
    return sorted(p.name for p in REPOS_DIR.iterdir() if (p / "bugs.yaml").is_file())


def catalog() -> list[tuple[str, str]]:
    """Every (repo, bug) pair, in a stable order."""
    return [(r, b) for r in repo_names() for b in load_repo(r).bugs]


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def parse_results(output: str) -> dict[str, str]:
    """pytest -rA short summary -> {test id: PASSED|FAILED|ERROR|...}."""
    return {m.group(2): m.group(1) for m in _RESULT_LINE.finditer(output)}


# --- scenario models -----------------------------------------------------------------------
class CodebaseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sandbox: SandboxSpec | str | None = Field(
        None, description="where the repository lives (default: docker)"
    )
    output_chars: int = Field(
        8000, ge=200, le=1_000_000, description="tool output shown to the agent (tail kept)"
    )
    test_timeout_s: float = Field(60.0, gt=0, description="one run of the tests")


class CodebaseTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(description="a bundled repository: statkit, textkit, shopcart")
    bug: str = Field(description="the id of one of its seeded bugs (bugs.yaml)")


def _tool(name: str, description: str, props: dict[str, Any], required: list[str],
          irreversible: bool = False) -> ToolSpec:
    return ToolSpec(name=name, description=description, irreversible=irreversible,
                    parameters={"type": "object", "properties": props, "required": required,
                                "additionalProperties": False})


_S = {"type": "string"}
TOOLS = [
    _tool("list_files", "List the repository's files (recursively) under a folder.",
          {"path": {**_S, "description": "folder, default the repository root"}}, []),
    _tool("read_file", "Read a file of the repository.", {"path": _S}, ["path"]),
    _tool("write_file", "Create or replace a file with the given content.",
          {"path": _S, "content": _S}, ["path", "content"]),
    _tool("edit_file", "Replace the one occurrence of `old` in a file by `new`.",
          {"path": _S, "old": _S, "new": _S}, ["path", "old", "new"]),
    _tool("apply_patch", "Apply a unified diff (as `patch -p1` does) to the repository.",
          {"diff": _S}, ["diff"]),
    _tool("run", "Run a shell command in the repository (no network).",
          {"command": _S, "timeout": {"type": "number", "description": "seconds"}},
          ["command"]),
    _tool("run_tests", "Run the repository's tests with pytest (all, or one path / test id).",
          {"path": {**_S, "description": "a test file or test id; default all"}}, []),
]
_TOOLS = {t.name: t for t in TOOLS}
EDIT_TOOLS = {"write_file", "edit_file", "apply_patch"}


@register_world("codebase")
class CodebaseWorld(World):
    uses_sandbox = True
    Config = CodebaseConfig
    Task = CodebaseTask
    cfg: CodebaseConfig
    spec: CodebaseTask
    blocking = True
    sim_seconds_per_step = 5.0

    def __init__(self, config: dict[str, Any], task: dict[str, Any], seed: int) -> None:
        super().__init__(config, task, seed)
        self.repo = load_repo(self.spec.repo)
        if self.spec.bug not in self.repo.bugs:
            raise LookupError(f"repo {self.repo.name!r} has no bug {self.spec.bug!r}; bugs: "
                              f"{', '.join(self.repo.bugs)}")
        self.bug = self.repo.bugs[self.spec.bug]
        sb = self.cfg.sandbox if self.cfg.sandbox is not None else "docker"
        self.sandbox_spec = SandboxSpec.model_validate(sb)
        if self.sandbox_spec.backend == "docker":
            # Worlds are built on the event loop's (main) thread, sandboxes opened in workers:
            # signal handlers that remove containers on SIGTERM can only be set from here.
            from trialrun.sandbox.docker_backend import install_cleanup_handlers

            install_cleanup_handlers()
        self.box: Sandbox | None = None
        self.counts = {"test_runs": 0, "edits": 0, "commands": 0, "violations": 0,
                       "timeouts": 0}
        self._state: dict[str, Any] | None = None
        self._outcome: dict[str, Any] | None = None

    @classmethod
    def tool_names(cls, config: dict[str, Any]) -> set[str]:
        return set(_TOOLS)

    @classmethod
    def generate_tasks(cls, n: int, seed: int, difficulty: str = "medium",
                       **params: Any) -> list[dict[str, Any]]:
        """`n` (repo, bug) tasks drawn from the catalog by `seed` (cycling when n > 16)."""
        import random

        pairs = catalog()
        random.Random(seed).shuffle(pairs)
        return [{"id": f"{r}-{b}", "repo": r, "bug": b} for r, b in
                (pairs[i % len(pairs)] for i in range(n))]

    # --- lifecycle -------------------------------------------------------------------------
    def reset(self) -> Observation:
        labels = {**sandbox_labels.get(), "world": "codebase"}
        labels.setdefault("episode", f"{self.task.get('id', self.bug.id)}-s{self.seed}")
        self.box = open_sandbox(self.sandbox_spec, labels)
        self.box.restore(_tar(self.repo.seeded(self.bug)))
        files = self.box.list_files()
        text = (f"Repository `{self.repo.name}` ({self.repo.description}).\n\n"
                f"Issue:\n{self.bug.issue.strip()}\n\n"
                "Fix the issue in the source code so that the repository's tests, and hidden "
                "tests of the described behaviour, pass. Do not edit the tests. Finish when done."
                f"\n\nFiles:\n" + "\n".join(files))
        return Observation(text=text, data={"repo": self.repo.name, "issue": self.bug.issue,
                                            "files": files, "test_command": TEST_CMD})

    def close(self) -> None:
        if self.box is not None:
            self.box.close()
            self.box = None

    def tools(self) -> list[ToolSpec]:
        return list(TOOLS)

    # --- tools -----------------------------------------------------------------------------
    def execute(self, node: str, tool: str, args: dict[str, Any]) -> ToolResult:
        if tool not in _TOOLS:
            raise ToolError(f"unknown tool {tool!r}")
        self._state = None
        self.clock.advance(SECONDS[tool])
        try:
            return getattr(self, f"_t_{tool}")(**args)
        except SandboxPathError as e:
            self.counts["violations"] += 1
            raise ToolError(f"sandbox violation: {e}") from e
        except (FileNotFoundError, IsADirectoryError) as e:
            raise ToolError(str(e)) from e
        except TypeError as e:  # wrong argument names
            raise ToolError(f"{tool}: {e}") from e

    def _clip(self, text: str) -> str:
        n = self.cfg.output_chars
        return text if len(text) <= n else f"[... {len(text) - n} chars cut ...]\n" + text[-n:]

    def _exec_result(self, r: ExecResult) -> ToolResult:
        if r.violation:
            self.counts["violations"] += 1
        if r.timed_out:
            self.counts["timeouts"] += 1
        out = {"exit_code": r.exit_code, "stdout": self._clip(r.stdout),
               "stderr": self._clip(r.stderr), "truncated": r.truncated,
               "timed_out": r.timed_out, "violation": r.violation}
        if r.violation:
            return ToolResult(ok=False, output=out, fault="agent",
                              error=f"sandbox violation: {r.violation}")
        return ToolResult(ok=True, output=out)

    def _t_list_files(self, path: str = ".") -> ToolResult:
        files = [f for f in self.box.list_files(path) if "__pycache__/" not in f]
        return ToolResult(ok=True, output=files)

    def _t_read_file(self, path: str) -> ToolResult:
        return ToolResult(ok=True, output=self._clip(self.box.read_file(path)))

    def _t_write_file(self, path: str, content: str) -> ToolResult:
        self.counts["edits"] += 1
        try:
            self.box.write_file(path, content)
        except OSError as e:
            return ToolResult(ok=False, error=str(e), fault="agent")
        return ToolResult(ok=True, output=f"wrote {len(content)} characters to {path}")

    def _t_edit_file(self, path: str, old: str, new: str) -> ToolResult:
        text = self.box.read_file(path)
        n = text.count(old) if old else 0
        if n != 1:
            raise ToolError(f"edit_file: `old` must occur exactly once in {path} "
                            f"(found {n} times)")
        self.counts["edits"] += 1
        self.box.write_file(path, text.replace(old, new))
        return ToolResult(ok=True, output=f"edited {path}")

    def _t_apply_patch(self, diff: str) -> ToolResult:
        self.counts["edits"] += 1
        self.box.write_file(".trialrun.patch", diff)
        r = self.box.exec("patch -p1 --batch --forward -i .trialrun.patch; s=$?; "
                          "rm -f .trialrun.patch; exit $s")
        res = self._exec_result(r)
        if res.ok and r.exit_code != 0:
            return ToolResult(ok=False, output=res.output, fault="agent",
                              error=f"patch failed: {self._clip(r.stdout + r.stderr)}")
        return res

    def _t_run(self, command: str, timeout: float | None = None) -> ToolResult:
        self.counts["commands"] += 1
        return self._exec_result(self.box.exec(command, timeout=timeout))

    def _t_run_tests(self, path: str | None = None) -> ToolResult:
        self.counts["test_runs"] += 1
        target = ""
        if path:
            file, sep, rest = path.partition("::")
            target = " " + shlex.quote(confine(file) + sep + rest)
        r = self.box.exec(TEST_CMD + target, timeout=self.cfg.test_timeout_s)
        res = self._exec_result(r)
        if isinstance(res.output, dict):
            res.output["stdout"] = _TIMING.sub("", res.output["stdout"])
            res.output["failed"] = [t for t, s in parse_results(r.stdout).items()
                                    if s in ("FAILED", "ERROR")]  # in pytest's order
            res.output["passed"] = r.exit_code == 0
        return res

    # --- ground truth ------------------------------------------------------------------------
    def judge(self, decision: Decision) -> Verdict | None:
        if decision.kind != "tool_call" or decision.tool not in EDIT_TOOLS:
            return None
        path = str(decision.args.get("path", ""))
        if decision.tool == "apply_patch":
            touched = re.findall(r"^\+\+\+ (?:b/)?(\S+)", str(decision.args.get("diff", "")),
                                 re.M)
        else:
            touched = [path]
        if any(p.lstrip("./").startswith("tests/") for p in touched):
            return Verdict(correct=False, reason="edits the tests instead of the code")
        if decision.tool == "edit_file" and _norm(path) == self.bug.seed.file:
            try:
                text = self.box.read_file(path)
            except (FileNotFoundError, SandboxPathError, IsADirectoryError):
                return None
            old, new = str(decision.args.get("old", "")), str(decision.args.get("new", ""))
            if old and text.count(old) == 1 and text.replace(old, new) == \
                    self.repo.files[self.bug.seed.file]:
                return Verdict(correct=True, reason="restores the correct code")
        return None

    def reference_decision(self, decision: Decision) -> Decision | None:
        """A human who takes over an editing step writes the correct file."""
        if decision.kind != "tool_call" or decision.tool not in EDIT_TOOLS:
            return None
        f = self.bug.seed.file
        return Decision(kind="tool_call", node=decision.node, tool="write_file",
                        args={"path": f, "content": self.repo.files[f]})

    def status(self) -> WorldStatus:
        metrics = {k: float(v) for k, v in self.counts.items()}
        if self._outcome is not None:
            metrics["resolved"] = float(self._outcome["resolved"])
        return WorldStatus(metrics=metrics)

    def outcome(self) -> dict[str, Any]:
        if self._outcome is None:
            self._outcome = self._grade()
        return self._outcome

    def _grade(self) -> dict[str, Any]:
        """Reset the tests to the originals, add the hidden ones, run all; SWE-bench verdict."""
        box = self.box
        state = self.state()
        box.extend_deadline(self.cfg.test_timeout_s + 60)  # grading is not the agent's time
        # What the agent did to test infrastructure does not count: originals only.
        box.exec("rm -rf tests; find . -name conftest.py -delete; "
                 "rm -f pytest.ini tox.ini setup.cfg")
        for path, text in {**self.repo.test_files(), **self.repo.hidden}.items():
            box.write_file(path, text)
        r = box.exec(GRADE_CMD, timeout=self.cfg.test_timeout_s)
        results = parse_results(r.stdout)
        f2p = {t: results.get(t) == "PASSED" for t in self.bug.fail_to_pass}
        p2p = {t: s == "PASSED" for t, s in results.items() if t not in f2p}
        resolved = bool(f2p) and all(f2p.values()) and all(p2p.values()) and bool(p2p)
        passed = sum(f2p.values()) + sum(p2p.values())
        total = len(f2p) + len(p2p)
        if r.violation:
            reason = f"the tests hit a sandbox limit ({r.violation})"
        elif resolved:
            reason = "resolved: FAIL_TO_PASS and PASS_TO_PASS tests pass"
        else:
            bad = [t for t, ok in {**f2p, **p2p}.items() if not ok]
            reason = f"not resolved: {len(bad)} test(s) fail: {', '.join(bad[:5])}"
        return {"success": resolved, "resolved": resolved, "reason": reason,
                "score": passed / total if total else 0.0,
                "fail_to_pass": f2p, "pass_to_pass": p2p,
                "f2p_passed": sum(f2p.values()), "f2p_total": len(f2p),
                "p2p_passed": sum(p2p.values()), "p2p_total": len(p2p),
                "repo": self.repo.name, "bug": self.bug.id, "state": state,
                **self.counts}

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Hashes of the workspace's files (what replays compare), and the counters."""
        if self._state is None:
            files: dict[str, str] = {}
            if self.box is not None:
                r = self.box.exec("find . -type f ! -path '*/__pycache__/*' -print0 | "
                                  "sort -z | xargs -0 -r sha256sum")
                for line in r.stdout.splitlines():
                    digest, _, path = line.partition("  ")
                    files[path.removeprefix("./")] = digest[:16]
            self._state = {"files": files, **self.counts}
        return self._state

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        if self.box is not None:
            snap["workspace"] = base64.b64encode(self.box.snapshot()).decode()
        return snap

    def restore(self, snap: dict[str, Any]) -> None:
        if "workspace" in snap and self.box is not None:
            self.box.restore(base64.b64decode(snap["workspace"]))
        self.counts.update({k: v for k, v in snap["state"].items() if k in self.counts})
        self._state = None
        self.rng.setstate(snap["rng"])
        self.clock.now = snap["clock"]


def _norm(path: str) -> str:
    try:
        return confine(path)
    except SandboxPathError:
        return path
