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

from trialrun.sandbox.backend import Sandbox
from trialrun.sandbox.worlds.codebase.catalog import Bug, Repo

GRADE_CMD = ('python3 -I -m pytest -p no:cacheprovider --noconftest -c /dev/null '
             '--rootdir="$PWD" -o pythonpath="$PWD" -q -rA --tb=no tests')
_RESULT_LINE = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED)\s+(\S+)", re.M)


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
