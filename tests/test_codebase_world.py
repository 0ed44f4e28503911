"""The codebase world: its repositories and seeded bugs, its tools and grading, the scripted
agent, and the library scenarios in Docker containers."""

from __future__ import annotations

import anyio
import pytest

from tests.docker_fixtures import docker_engine, sandbox_image, trialrun_containers  # noqa: F401
from trialrun.runner import RunOptions, run_episodes
from trialrun.sandbox.backend import SandboxSpec, open_sandbox
from trialrun.sandbox.world import ToolError
from trialrun.sandbox.worlds.codebase import (
    GRADE_CMD,
    CodebaseWorld,
    called_names,
    catalog,
    function_body,
    load_repo,
    mutations,
    parse_results,
    tar_files,
    unique_edit,
)
from trialrun.scenarios.loader import LIBRARY, load_scenario, load_scenario_source
from trialrun.trajectory import Decision

# What the scripted agent can fix: the visible tests expose the bug and one token repairs it.
FIXABLE = {"variance-sample", "clamp-swapped", "moving-average-window", "truncate-exact",
           "wrap-exact-width", "remove-last-unit", "lru-evicts-newest"}
LOCAL = {"backend": "local"}


def _suite(files: dict[str, str]) -> dict[str, str]:
    with open_sandbox(SandboxSpec(backend="local")) as box:
        box.restore(tar_files(files))
        r = box.exec(GRADE_CMD)
        return parse_results(r.stdout)


# --- the repositories: every bug is real and graded as SWE-bench does ---------------------
@pytest.mark.parametrize("repo", ["statkit", "textkit", "shopcart"])
def test_correct_repo_passes_every_test(repo):
    r = load_repo(repo)
    results = _suite({**r.files, **r.hidden})
    assert results and set(results.values()) == {"PASSED"}, results


@pytest.mark.parametrize("repo, bug", catalog())
def test_seeded_bug_fails_exactly_its_hidden_tests(repo, bug):
    r = load_repo(repo)
    b = r.bugs[bug]
    results = _suite({**r.seeded(b), **r.hidden})
    failing = {t for t, s in results.items() if s != "PASSED"}
    assert set(b.fail_to_pass) <= failing, f"FAIL_TO_PASS tests pass with the bug: {results}"
    hidden_failing = {t for t in failing if "_hidden" in t}
    assert hidden_failing == set(b.fail_to_pass), "other hidden tests must be PASS_TO_PASS"


def test_catalog_has_sixteen_bugs():
    assert len(catalog()) == 16 and FIXABLE <= {b for _, b in catalog()}


# --- the scripted agent's pieces -------------------------------------------------------------
def test_mutations():
    assert "    return ss / (n - 1) if sample" in mutations("    return ss / (n + 1) if sample")
    assert "x = min(max(a, lo), hi)" in mutations("x = max(min(a, lo), hi)")
    assert "if i >= window:" in mutations("if i > window:")
    assert "if i < len(w) - 1:" in mutations("if i < len(w):")
    assert "pop(last=False)" in mutations("pop(last=True)")
    assert all("->" in m for m in mutations("def f(x) -> int:"))  # arrows are not operators
    assert "x = a  # b > c" not in mutations("x = a  # b > c")


def test_localization_helpers():
    src = "def test_a():\n    assert clamp(f(1), 0, 2) == 1\n    assert len([1]) == 1\n"
    assert called_names(src, "test_a") == ["clamp", "f"]
    lines = ["def f(x):", "    '''doc'''", "    y = x", "", "    return y", "def g():", "  pass"]
    assert function_body(lines, 0) == [2, 4]
    assert unique_edit(["a", "x = 1", "b", "x = 1"], 3, "x = 2") == ("b\nx = 1", "b\nx = 2")


# --- the world's tools and grading (local backend: no Docker needed) -------------------------
def _world(bug: str = "variance-sample", repo: str = "statkit") -> CodebaseWorld:
    w = CodebaseWorld({"sandbox": LOCAL}, {"id": "t", "repo": repo, "bug": bug}, seed=0)
    w.reset()
    return w


def test_world_tools_and_grading():
    w = _world()
    try:
        assert "statkit/stats.py" in w.execute("localize", "list_files", {}).output
        src = w.execute("localize", "read_file", {"path": "statkit/stats.py"}).output
        assert "ss / (n + 1) if sample" in src  # the bug is planted
        with pytest.raises(ToolError, match="sandbox violation"):
            w.execute("localize", "read_file", {"path": "../../etc/passwd"})
        with pytest.raises(ToolError, match="exactly once"):
            w.execute("edit", "edit_file", {"path": "statkit/stats.py", "old": "return",
                                            "new": "x"})
        with pytest.raises(ToolError):
            w.execute("localize", "read_file", {"path": "nope.py"})
        r = w.execute("verify", "run_tests", {})
        assert r.ok and r.output["failed"] == ["tests/test_stats.py::test_variance_sample",
                                               "tests/test_stats.py::test_stdev"]
        assert " in " not in r.output["stdout"].splitlines()[-1]  # no timing: replayable
        r = w.execute("run", "run", {"command": "sleep 30", "timeout": 1})
        assert not r.ok and r.fault == "agent" and r.output["violation"] == "timeout"
        d0 = w.digest()
        fix = Decision(kind="tool_call", node="edit", tool="edit_file",
                       args={"path": "statkit/stats.py", "old": "(n + 1) if sample",
                             "new": "(n - 1) if sample"})
        assert w.judge(fix).correct
        tamper = Decision(kind="tool_call", node="edit", tool="write_file",
                          args={"path": "tests/test_stats.py", "content": ""})
        assert w.judge(tamper).correct is False
        w.execute("edit", fix.tool, fix.args)
        assert w.digest() != d0
        out = w.outcome()
        assert out["resolved"] and out["success"] and out["f2p_passed"] == 1
        assert w.status().metrics["violations"] == 2 and w.status().metrics["resolved"] == 1
    finally:
        w.close()


def test_tampering_with_tests_does_not_resolve():
    w = _world()
    try:
        w.execute("edit", "write_file", {"path": "tests/conftest.py", "content":
                  "import pytest\n\n@pytest.fixture(autouse=True)\ndef skip():\n"
                  "    pytest.skip('no')\n"})
        w.execute("edit", "write_file", {"path": "tests/test_stats_hidden.py",
                                         "content": "def test_variance_sample_small():\n"
                                                    "    pass\n"})
        assert w.execute("verify", "run_tests", {}).output["failed"] == []  # fooled itself
        out = w.outcome()
        assert not out["resolved"] and out["fail_to_pass"] == {
            "tests/test_stats_hidden.py::test_variance_sample_small": False}
    finally:
        w.close()


def test_apply_patch_and_reference_decision():
    w = _world("clamp-swapped")
    try:
        diff = ("--- a/statkit/stats.py\n+++ b/statkit/stats.py\n@@ -57,3 +57,3 @@\n"
                "     if lo > hi:\n         raise ValueError(\"lo must not exceed hi\")\n"
                "-    return max(min(x, lo), hi)\n+    return min(max(x, lo), hi)\n")
        r = w.execute("edit", "apply_patch", {"diff": diff})
        assert r.ok, r
        assert w.execute("verify", "run_tests", {}).output["failed"] == []
        bad = w.execute("edit", "apply_patch", {"diff": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"})
        assert not bad.ok and bad.fault == "agent"
    finally:
        w.close()
    w = _world("median-even")
    try:
        d = Decision(kind="tool_call", node="edit", tool="edit_file", args={"path": "x"})
        ref = w.reference_decision(d)
        w.execute("edit", ref.tool, ref.args)
        assert w.outcome()["resolved"]
    finally:
        w.close()


def test_snapshot_restore_workspace():
    w = _world()
    try:
        snap = w.snapshot()
        d0 = w.digest()
        w.execute("edit", "write_file", {"path": "new.py", "content": "x = 1\n"})
        assert w.digest() != d0
        w.restore(snap)
        assert w.digest() == d0
    finally:
        w.close()


def _run(text: str, **opts):
    loaded = [load_scenario_source(text, "inline.yaml")]
    from trialrun.store import Store

    store = Store("sqlite://")
    return anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(**opts),
                                          keep_results=True))


@pytest.mark.parametrize("bug, resolved", [("variance-sample", True), ("word-count-spaces", False),
                                           ("title-last-word", False)])
def test_scripted_agent_local(bug, resolved):
    repo = "statkit" if bug == "variance-sample" else "textkit"
    text = f"""
name: t/{bug}
world: {{type: codebase, sandbox: {{backend: local}}}}
tasks: [{{id: {bug}, repo: {repo}, bug: {bug}}}]
agent: {{type: scripted:codebase}}
budgets: {{max_steps: 80}}
"""
    res = _run(text).results[0]
    assert res.end_reason.value == "finished" and res.success is resolved, res.error
    assert res.metrics["resolved"] == float(resolved)


def test_scenario_errors_are_clear():
    from trialrun.scenarios.loader import ScenarioError

    bad = """
name: t/bad
world: {type: codebase, sandbox: {backend: docker, limits: {memroy_mb: 5}}}
tasks: [{id: a, repo: statkit, bug: variance-sample, color: red}]
agent: {type: scripted:codebase}
"""
    with pytest.raises(ScenarioError) as e:
        load_scenario_source(bad, "bad.yaml")
    msg = str(e.value)
    assert "memroy_mb" in msg and "color" in msg


# --- the library in Docker ------------------------------------------------------------------
def test_library_has_codebase_scenarios():
    paths = sorted((LIBRARY / "codebase").glob("*.yaml"))
    assert len(paths) >= 10
    for p in paths:
        load_scenario(p)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_all_bugs_in_containers(sandbox_image):  # noqa: F811
    """The 16 bugs in docker sandboxes (warm pool): the scripted agent resolves exactly the
    fixable ones, and no container is left."""
    from trialrun.sandbox.pool import shutdown_pools
    from trialrun.store import Store

    loaded = [load_scenario(LIBRARY / "codebase" / "all-bugs.yaml")]
    store = Store("sqlite://")
    try:
        summary = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(concurrency=2),
                                                 keep_results=True))
    finally:
        shutdown_pools()
    got = {r.key.task.split("-", 1)[1]: r for r in summary.results}
    assert len(got) == 16 and summary.errors == 0, [r.error for r in got.values() if r.error]
    assert {b for b, r in got.items() if r.success} == FIXABLE
    from trialrun.sandbox.docker_backend import owner

    assert trialrun_containers(owner=owner()) == []  # none of this process's is left


def test_episodes_repeat_bit_for_bit():
    """Same scenario, same seed: same decisions, tool results and state digests."""
    text = """
name: t/repeat
world: {type: codebase, sandbox: {backend: local}}
tasks: [{id: clamp, repo: statkit, bug: clamp-swapped}]
agent: {type: scripted:codebase}
"""
    a, b = _run(text).results[0], _run(text).results[0]
    assert a.success and len(a.steps) == len(b.steps)
    for x, y in zip(a.steps, b.steps, strict=True):
        assert x.decision == y.decision and x.result == y.result
        assert x.state_digest == y.state_digest
    assert a.final_digest == b.final_digest


# --- a sandbox fault during grading is the infrastructure's, never the agent's (issue 14) ----
class _FakeBox:
    """A sandbox whose grading run ends as told, and that is (or is not) still alive."""

    def __init__(self, run, alive=True):
        self.run, self.alive, self.commands = run, alive, []

    def extend_deadline(self, seconds):
        pass

    def write_file(self, path, text):
        pass

    def exec(self, cmd, timeout=None):
        from trialrun.sandbox.backend import ExecResult, SandboxFault

        self.commands.append(cmd)
        if cmd == GRADE_CMD:
            return self.run
        if cmd == "true":
            if self.alive is None:
                raise SandboxFault("exec failed on container x: 409 container is not running")
            return ExecResult(exit_code=0 if self.alive else 137)
        return ExecResult(exit_code=0)


_F2P = "tests/test_hidden.py::test_variance_sample_small"


@pytest.mark.parametrize("run, alive, verdict", [
    # partial output, then the container was killed: not the agent's failure
    (dict(exit_code=137, stdout="PASSED tests/test_stats.py::test_mean\n"), None, "fault"),
    (dict(exit_code=137, stdout="PASSED tests/test_stats.py::test_mean\n"), False, "fault"),
    (dict(exit_code=-1, stdout=""), True, "fault"),
    # the stream ended early with a normal-looking code but no summary line
    (dict(exit_code=1, stdout=f"FAILED {_F2P}\n"), True, "fault"),
    # pytest finished, but an expected test never reported
    (dict(exit_code=0, stdout="PASSED tests/test_stats.py::test_mean\n1 passed in 0.01s\n"),
     True, "fault"),
    (dict(exit_code=5, stdout="no tests ran in 0.01s\n"), True, "fault"),
    # finished runs are scored: failed, resolved, the agent's code not importing, a limit hit
    (dict(exit_code=1, stdout=f"PASSED tests/test_stats.py::test_mean\nFAILED {_F2P}\n"
          "1 failed, 1 passed in 0.02s\n"), True, "fail"),
    (dict(exit_code=0, stdout=f"PASSED tests/test_stats.py::test_mean\nPASSED {_F2P}\n"
          "2 passed in 0.02s\n"), True, "pass"),
    (dict(exit_code=2, stdout="ERROR tests/test_hidden.py\nERROR tests/test_stats.py\n"
          "2 errors in 0.15s\n"), True, "fail"),
    (dict(exit_code=137, stdout="", timed_out=True, violation="timeout"), True, "fail"),
])
def test_grading_never_scores_a_sandbox_fault(run, alive, verdict):
    from trialrun.sandbox.backend import ExecResult, SandboxFault
    from trialrun.sandbox.worlds.codebase.grading import grade

    repo = load_repo("statkit")
    bug = repo.bugs["variance-sample"]
    bug = bug.model_copy(update={"fail_to_pass": [_F2P]})
    box = _FakeBox(ExecResult(**run), alive)
    if verdict == "fault":
        with pytest.raises(SandboxFault):
            grade(box, repo, bug, 10)
    else:
        out = grade(box, repo, bug, 10)
        assert out["resolved"] is (verdict == "pass")


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_container_killed_during_grading_is_an_infra_error(sandbox_image):  # noqa: F811
    """Fault injection: the container is killed while the hidden tests run. The world raises
    SandboxFault (the runner records an infrastructure error and retries), never a score."""
    import threading
    import time

    from trialrun.sandbox.backend import SandboxFault
    from trialrun.sandbox.docker_backend import client

    w = CodebaseWorld({"sandbox": {"backend": "docker", "image": sandbox_image}},
                      {"id": "t", "repo": "statkit", "bug": "variance-sample"}, seed=0)
    w.reset()
    try:
        box = w.box
        real_exec = box.exec

        def exec_then_killed(cmd, timeout=None, **kw):
            if cmd != GRADE_CMD:
                return real_exec(cmd, timeout=timeout, **kw)
            # The tests run (partial output is printed), and the container dies under them.
            killer = threading.Timer(2.0, lambda: client().api.kill(box.id))
            killer.start()
            t0 = time.monotonic()
            try:
                return real_exec(f"{GRADE_CMD}; sleep 30", timeout=timeout, **kw)
            finally:
                killer.cancel()
                assert time.monotonic() - t0 < 25

        box.exec = exec_then_killed
        with pytest.raises(SandboxFault):
            w.outcome()
    finally:
        w.close()


def test_killed_grading_is_an_error_of_the_run_not_a_score(monkeypatch):
    """Through the runner: a grading run cut short is recorded as an error, never scored."""
    from trialrun.sandbox.backend import ExecResult
    from trialrun.sandbox.worlds.codebase import grading

    text = """
name: t/killed
world: {type: codebase, sandbox: {backend: local}}
tasks: [{id: clamp, repo: statkit, bug: clamp-swapped}]
agent: {type: scripted:codebase}
"""
    calls = []

    def killed(box, repo, bug, timeout_s):
        real_exec = box.exec

        def exec_(cmd, timeout=None, **kw):
            if cmd == GRADE_CMD:
                calls.append(cmd)
                return ExecResult(exit_code=137, stdout="PASSED tests/test_stats.py::test_x\n")
            return real_exec(cmd, timeout=timeout, **kw)

        box.exec = exec_
        return grade_orig(box, repo, bug, timeout_s)

    grade_orig = grading.grade
    monkeypatch.setattr("trialrun.sandbox.worlds.codebase.world.grade", killed)
    summary = _run(text)
    assert calls and summary.errors >= 1
    assert all(r.success is None for r in summary.results), [r.success for r in summary.results]
