"""The codebase world: fix a seeded bug in a small real Python repository, in a sandbox.

Each task names a bundled repository and one of its seeded bugs (`catalog.py`). The agent
gets the issue and tools to list, read, write, edit and patch files, run commands and run the
visible tests, all inside the episode's sandbox (docker by default). When the agent finishes,
the world grades as SWE-bench does (`grading.py`): original tests plus hidden tests, run in
the container; resolved = FAIL_TO_PASS and PASS_TO_PASS tests all pass.
"""

from __future__ import annotations

import base64
import re
import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trialrun.registry import register
from trialrun.sandbox.backend import (
    ExecResult,
    Sandbox,
    SandboxPathError,
    SandboxSpec,
    confine,
    open_sandbox,
    sandbox_labels,
)
from trialrun.sandbox.world import ToolError, Verdict, World, WorldStatus, tool
from trialrun.sandbox.worlds.codebase.catalog import catalog, load_repo, tar_files
from trialrun.sandbox.worlds.codebase.grading import grade, parse_results
from trialrun.trajectory import Decision, Observation, ToolResult

# The agent's test command; grading uses an isolated one (grading.GRADE_CMD).
TEST_CMD = "python3 -m pytest -q -p no:cacheprovider --tb=short -rfE"
_TIMING = re.compile(r" in \d+(\.\d+)?s( \([0-9:]+\))?")  # pytest's run time: not replayable
EDIT_TOOLS = {"write_file", "edit_file", "apply_patch"}


@register("world", "codebase")
class CodebaseWorld(World):
    # What outcome() returns: outcome expressions are checked against these names at load,
    # and state_equals is refused there (this world states no expected final state).
    outcome_keys = frozenset({
        "success", "resolved", "reason", "score", "fail_to_pass", "pass_to_pass",
        "f2p_passed", "f2p_total", "p2p_passed", "p2p_total", "repo", "bug", "state",
        "test_runs", "edits", "commands", "violations", "timeouts"})
    uses_sandbox = True
    blocking = True  # tools wait on a container: the loop runs them in a worker thread
    sim_seconds_per_step = 5.0

    class Options(BaseModel):
        """The scenario's `world:` block."""

        model_config = ConfigDict(extra="forbid")

        sandbox: SandboxSpec | str | None = Field(
            None, description="where the repository lives (default: docker)"
        )
        output_chars: int = Field(
            8000, ge=200, le=1_000_000, description="tool output shown to the agent (tail kept)"
        )
        test_timeout_s: float = Field(60.0, gt=0, description="one run of the tests")

    class Task(BaseModel):
        """A task's world-specific fields: which bug of which repository."""

        model_config = ConfigDict(extra="forbid")

        repo: str = Field(description="a bundled repository: statkit, textkit, shopcart")
        bug: str = Field(description="the id of one of its seeded bugs (bugs.yaml)")

    options: Options
    spec: Task

    def __init__(self, options: Options | dict[str, Any] | None, task: dict[str, Any],
                 seed: int) -> None:
        super().__init__(options, task, seed)
        self.repo = load_repo(self.spec.repo)
        if self.spec.bug not in self.repo.bugs:
            raise LookupError(f"repo {self.repo.name!r} has no bug {self.spec.bug!r}; bugs: "
                              f"{', '.join(self.repo.bugs)}")
        self.bug = self.repo.bugs[self.spec.bug]
        sb = self.options.sandbox if self.options.sandbox is not None else "docker"
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
    def check_task(cls, options: Any, task: dict[str, Any]) -> list[str]:
        """A task's repository and bug exist (read from the catalogue: no sandbox is
        started at load time)."""
        try:
            repo = load_repo(task.get("repo", ""))
        except LookupError as e:
            return [str(e)]
        if task.get("bug") not in repo.bugs:
            return [f"repo {repo.name!r} has no bug {task.get('bug')!r}; bugs: "
                    f"{', '.join(repo.bugs)}"]
        return []

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
        self.box.restore(tar_files(self.repo.seeded(self.bug)))
        files = self.box.list_files()
        # What it is graded on first (grading.py, judge()), then the issue, then the files.
        text = (f"You are fixing an issue in the repository `{self.repo.name}` "
                f"({self.repo.description}).\n"
                "Fix the issue in the source code so that the repository's tests, and hidden "
                "tests of the described behaviour, pass. Do not edit the tests (anything "
                "under tests/): that is a mistake, and grading restores the original tests "
                "anyway. Finish when done.\n\n"
                f"Issue:\n{self.bug.issue.strip()}\n\nFiles:\n" + "\n".join(files))
        return Observation(text=text, data={"repo": self.repo.name, "issue": self.bug.issue,
                                            "files": files, "test_command": TEST_CMD})

    def close(self) -> None:
        if self.box is not None:
            self.box.close()
            self.box = None

    # --- tools -----------------------------------------------------------------------------
    def execute(self, node: str, tool: str, args: dict[str, Any]) -> ToolResult:
        """Every call may change the workspace (forget the cached state); a path that leaves
        the workspace is counted as a violation; a missing file is the agent's error."""
        self._state = None
        try:
            return self.call_tool(tool, args)
        except SandboxPathError as e:
            self.counts["violations"] += 1
            raise ToolError(f"sandbox violation: {e}") from e
        except (FileNotFoundError, IsADirectoryError) as e:
            raise ToolError(str(e)) from e

    @tool(seconds=5)
    def list_files(self, path: str = ".") -> list[str]:
        """List the repository's files (recursively) under a folder.

        Args:
            path: folder, default the repository root
        """
        return [f for f in self.box.list_files(path) if "__pycache__/" not in f]

    @tool(seconds=10)
    def read_file(self, path: str) -> str:
        """Read a file of the repository.

        Args:
            path: the file, relative to the repository root
        """
        return self._clip(self.box.read_file(path))

    @tool(seconds=30)
    def write_file(self, path: str, content: str) -> ToolResult:
        """Create or replace a file with the given content.

        Args:
            path: the file, relative to the repository root
            content: the file's whole new text
        """
        self.counts["edits"] += 1
        try:
            self.box.write_file(path, content)
        except OSError as e:
            return ToolResult(ok=False, error=str(e), fault="agent")
        return ToolResult(ok=True, output=f"wrote {len(content)} characters to {path}")

    @tool(seconds=20)
    def edit_file(self, path: str, old: str, new: str) -> str:
        """Replace the one occurrence of `old` in a file by `new`.

        Args:
            path: the file, relative to the repository root
            old: text that occurs exactly once in the file (widen it until it does)
            new: the text to put in its place
        """
        text = self.box.read_file(path)
        n = text.count(old) if old else 0
        if n != 1:
            raise ToolError(f"edit_file: `old` must occur exactly once in {path} "
                            f"(found {n} times)")
        self.counts["edits"] += 1
        self.box.write_file(path, text.replace(old, new))
        return f"edited {path}"

    @tool(seconds=30)
    def apply_patch(self, diff: str) -> ToolResult:
        """Apply a unified diff (as `patch -p1` does) to the repository.

        Args:
            diff: a unified diff with `--- a/<path>` and `+++ b/<path>` headers
        """
        self.counts["edits"] += 1
        self.box.write_file(".trialrun.patch", diff)
        r = self.box.exec("patch -p1 --batch --forward -i .trialrun.patch; s=$?; "
                          "rm -f .trialrun.patch; exit $s")
        res = self._exec_result(r)
        if res.ok and r.exit_code != 0:
            return ToolResult(ok=False, output=res.output, fault="agent",
                              error=f"patch failed: {self._clip(r.stdout + r.stderr)}")
        return res

    @tool(seconds=10)
    def run(self, command: str, timeout: float | None = None) -> ToolResult:
        """Run a shell command in the repository (no network).

        Args:
            command: a shell command line, run from the repository root
            timeout: seconds before the command is killed (default: the sandbox's limit)
        """
        self.counts["commands"] += 1
        return self._exec_result(self.box.exec(command, timeout=timeout))

    @tool(seconds=20)
    def run_tests(self, path: str | None = None) -> ToolResult:
        """Run the repository's tests with pytest (all, or one path / test id).

        Args:
            path: a test file or test id (`tests/test_x.py::test_y`); default all
        """
        self.counts["test_runs"] += 1
        target = ""
        if path:
            file, sep, rest = path.partition("::")
            target = " " + shlex.quote(confine(file) + sep + rest)
        r = self.box.exec(TEST_CMD + target, timeout=self.options.test_timeout_s)
        res = self._exec_result(r)
        if isinstance(res.output, dict):
            res.output["stdout"] = _TIMING.sub("", res.output["stdout"])
            res.output["failed"] = [t for t, s in parse_results(r.stdout).items()
                                    if s in ("FAILED", "ERROR")]  # in pytest's order
            res.output["passed"] = r.exit_code == 0
        return res

    def _clip(self, text: str) -> str:
        n = self.options.output_chars
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

    def human_answer(self, question: str) -> str:
        """No one knows more than the issue says: asking is never needed here (the judge
        never sets help_needed), so the answer adds nothing the agent does not have."""
        return ("No maintainer can add to the issue: it is everything known about the bug. "
                "Decide yourself: reproduce it with run_tests, fix the source code (not the "
                f"tests), and finish when the tests pass. The issue again:\n"
                f"{self.bug.issue.strip()}")

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
            state = self.state()  # before grading rewrites the tests
            verdict = grade(self.box, self.repo, self.bug, self.options.test_timeout_s)
            self._outcome = {**verdict, "repo": self.repo.name, "bug": self.bug.id,
                             "state": state, **self.counts}
        return self._outcome

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
