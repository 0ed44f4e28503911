"""Hidden-test grading of a codebase episode, as SWE-bench does it.

When the agent finishes, whatever it did to the test infrastructure is thrown away: the
repository's tests are reset to their originals, the hidden tests are added, and the whole
suite runs in the episode's sandbox with an isolated pytest (no conftest, no config files, no
cache). Resolved = every FAIL_TO_PASS test passes and every PASS_TO_PASS test (all others)
still passes. Kept apart from the world's tools so the verdict's rules read in one place.
"""

from __future__ import annotations

import re
from typing import Any

from trialrun.sandbox.backend import ExecResult, Sandbox, SandboxFault
from trialrun.sandbox.worlds.codebase.catalog import Bug, Repo

GRADE_CMD = ('python3 -I -m pytest -p no:cacheprovider --noconftest -c /dev/null '
             '--rootdir="$PWD" -o pythonpath="$PWD" -q -rA --tb=no tests')
_RESULT_LINE = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED)\s+(\S+)", re.M)
# pytest's last line, e.g. "1 failed, 27 passed in 0.20s" or "1 error in 0.05s": the run ended
# by itself (a container killed mid-run leaves none).
_SUMMARY = re.compile(r"^=*\s*(?:\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|"
                      r"deselected|warnings?)(?:, )?)+ in \d+(?:\.\d+)?s\b", re.M)
# Exit codes of a pytest run that finished: 0 all passed, 1 some failed, 2 interrupted by
# collection errors (the agent's code may not import). 3, 4, 5 (internal error, usage error,
# nothing collected) cannot come from the agent: the tests are the originals.
_FINISHED = (0, 1, 2)


def parse_results(output: str) -> dict[str, str]:
    """pytest -rA short summary -> {test id: PASSED|FAILED|ERROR|...}."""
    return {m.group(2): m.group(1) for m in _RESULT_LINE.finditer(output)}


def grade(box: Sandbox, repo: Repo, bug: Bug, timeout_s: float) -> dict[str, Any]:
    """Reset the tests to the originals, add the hidden ones, run all; SWE-bench verdict.

    Changes the workspace: call it last, after the final state has been read."""
    box.extend_deadline(timeout_s + 60)  # grading is not the agent's time
    # What the agent did to test infrastructure does not count: originals only.
    box.exec("rm -rf tests; find . -name conftest.py -delete; "
             "rm -f pytest.ini tox.ini setup.cfg")
    for path, text in {**repo.test_files(), **repo.hidden}.items():
        box.write_file(path, text)
    r = box.exec(GRADE_CMD, timeout=timeout_s)
    results = parse_results(r.stdout)
    problem = incomplete_run(r, results, bug.fail_to_pass)
    if problem is not None:
        # Is the sandbox still there? A dead container raises SandboxFault here already.
        alive = box.exec("true", timeout=30)
        if not alive.ok:
            raise SandboxFault(f"the sandbox failed during grading: {problem} (and it no "
                               f"longer runs commands: exit code {alive.exit_code})")
        if r.violation is None:  # the box is alive, but the run did not finish: not scored
            raise SandboxFault(f"the grading run did not finish: {problem}")
    f2p = {t: results.get(t) == "PASSED" for t in bug.fail_to_pass}
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
            "p2p_passed": sum(p2p.values()), "p2p_total": len(p2p)}


def incomplete_run(r: ExecResult, results: dict[str, str],
                   fail_to_pass: list[str] | tuple[str, ...]) -> str | None:
    """Why a grading run cannot be scored as it stands (None: it can).

    A run can be scored when pytest finished by itself (exit code 0, 1 or 2 and its summary
    line) and every FAIL_TO_PASS test reported (or its file failed to collect, the agent's
    code not importing), or when the tests hit a sandbox limit (`violation`: the agent's code
    looping, eating memory or forking, which is the agent's fault). Anything else (a killed
    container, a cut stream, partial output) is the sandbox's fault, never the agent's."""
    if r.violation is not None:
        return f"the tests hit a sandbox limit ({r.violation})"
    if r.exit_code not in _FINISHED:
        return f"pytest exited with code {r.exit_code}"
    if not _SUMMARY.search(r.stdout):
        return f"pytest printed no summary line (exit code {r.exit_code})"
    broken_files = {t for t, s in results.items() if s == "ERROR" and "::" not in t}
    missing = [t for t in fail_to_pass
               if t not in results and t.partition("::")[0] not in broken_files]
    if missing:
        return f"{len(missing)} expected test(s) never reported: {', '.join(missing[:5])}"
    return None
