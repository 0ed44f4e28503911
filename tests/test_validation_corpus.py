"""A corpus of realistic scenario mistakes (`tests/corpus/*.yaml`): `trialrun validate` gives
each exactly one problem, at the right file:line:column, saying what was expected, and never a
traceback.

Each corpus file starts with two comment lines:

    # mistake: what the user got wrong
    # expect: error 6:3 world.customer: unknown key; did you mean 'customers'?

(`warning` instead of `error` for a problem that does not fail validation.) Files whose world
is `corpus_toy:...` use `tests/corpus/corpus_toy.py`, found through PYTHONPATH.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from trialrun.scenarios.loader import (
    LIBRARY,
    ScenarioError,
    check_targets,
    load_scenario,
    load_targets,
)
from trialrun.store import Store

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.yaml"))
TRIALRUN = str(Path(sys.executable).with_name("trialrun"))
EXPECT = re.compile(r"^# expect: (error|warning) (\d+):(\d+) (.+)$", re.M)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(CORPUS), *filter(None, [os.environ.get("PYTHONPATH")])])}


def expectation(path: Path) -> tuple[str, int, int, str]:
    m = EXPECT.search(path.read_text())
    assert m, f"{path.name}: no '# expect: error|warning LINE:COL message' header"
    return m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)


def validate(*args: str, cwd: Path = CORPUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRIALRUN, "validate", *args], cwd=cwd, env=ENV, text=True,
                          capture_output=True, timeout=120)


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if line.startswith("error: ") or ": warning: " in line]


@pytest.fixture(scope="module")
def outputs() -> dict[str, subprocess.CompletedProcess[str]]:
    """`trialrun validate FILE` for every corpus file, one process each, run side by side."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip((f.name for f in FILES), pool.map(lambda f: validate(f.name), FILES),
                        strict=True))


def test_the_corpus_is_large_and_covers_every_section():
    assert len(FILES) >= 60
    paths = " ".join(expectation(f)[3].split(":")[0] for f in FILES)
    for section in ("name", "world.type", "world.customer", "tasks[0]", "tasks.generat",
                    "agent.type", "agent.params", "nodes.", "graders[", "node_map",
                    "checkpoints.", "checkpoints.human", "escalation.", "trials", "seeds",
                    "budgets."):
        assert section in paths, section


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_each_mistake_gives_one_problem_at_its_line(path: Path, outputs):
    severity, line, column, message = expectation(path)
    out = outputs[path.name]
    text = out.stdout + out.stderr
    assert "Traceback" not in text, text
    problems = problem_lines(out.stderr)
    assert len(problems) == 1, text
    assert f"{path.name}:{line}:{column}: {message}" in problems[0], problems[0]
    if severity == "error":
        assert problems[0].startswith("error: ")
        assert out.returncode == 2, text
        assert "ok  " not in out.stdout
    else:
        assert ": warning: " in problems[0]
        assert out.returncode == 0, text
        assert out.stdout.startswith(f"ok  {path.name}  ("), out.stdout


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_each_mistake_in_process(path: Path, monkeypatch):
    """The same through the API: one Issue, with its severity, line and column."""
    monkeypatch.syspath_prepend(str(CORPUS))
    severity, line, column, message = expectation(path)
    try:
        loaded = load_scenario(path)
    except ScenarioError as e:
        assert severity == "error"
        (issue,) = e.issues
        assert not e.warnings
    else:
        assert severity == "warning"
        (issue,) = loaded.warnings
    assert (issue.severity, issue.line, issue.column) == (severity, line, column)
    assert message in str(issue)


def test_builtin_library_validates_with_no_warning():
    suites = sorted(str(p) for p in LIBRARY.iterdir() if p.is_dir())
    out = validate(*suites)
    assert "Traceback" not in out.stdout + out.stderr
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    files = sorted(LIBRARY.glob("*/*.yaml"))
    oks = [line for line in out.stdout.splitlines() if line.startswith("ok  ")]
    assert len(oks) == len(files)


def test_one_ok_line_per_valid_file_and_errors_for_the_others(tmp_path):
    good = CORPUS / "toy_node_unreachable.yaml"  # valid, with a warning
    bad = CORPUS / "trials_typo.yaml"
    out = validate(str(good), str(bad), "no-such-suite", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout.splitlines() == [f"ok  {good}  (toy/count: 1 task)"]
    problems = problem_lines(out.stderr)
    assert len(problems) == 3 and "warning" in problems[0] and "trails" in problems[1]
    assert "no-such-suite: no such file or folder" in problems[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_every_problem_of_a_file_in_line_order(tmp_path, monkeypatch):
    """A broken optional section does not hide the problems of the rest of the file."""
    monkeypatch.syspath_prepend(str(CORPUS))
    p = write(tmp_path, """\
        name: toy/many
        world: {type: corpus_toy:CounterWorld}
        tasks: [{id: a, target: 2}]
        agent: {type: corpus_toy:CounterAgent}
        nodes:
          cont: {graders: [{type: assert, expr: "arg.amount > 0"}]}
        graders:
          - {type: assert, expr: "reachd"}
        trials: many
        """)
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    assert [(i.line, i.path) for i in e.value.issues] == [
        (6, "nodes.cont.graders[0].expr"), (8, "graders[0].expr"), (9, "trials")]
    assert [(i.line, i.severity) for i in e.value.warnings] == [(6, "warning")]
    out = validate(str(p), cwd=tmp_path)
    lines = problem_lines(out.stderr)
    assert [re.search(r"s\.yaml:(\d+):", x).group(1) for x in lines] == ["6", "6", "8", "9"]
    assert ": warning: no step reaches node 'cont'" in lines[0]


def test_warnings_travel_with_the_scenario_and_with_the_error(monkeypatch):
    monkeypatch.syspath_prepend(str(CORPUS))
    (ls,) = load_targets([str(CORPUS / "toy_node_unreachable.yaml")])
    assert [w.path for w in ls.warnings] == ["nodes.cont"]
    assert str(ls.warnings[0]).startswith(f"{CORPUS / 'toy_node_unreachable.yaml'}:15:3: "
                                          "nodes.cont: warning: no step reaches")
    reports = check_targets([str(CORPUS / "toy_node_unreachable.yaml"),
                             str(CORPUS / "trials_typo.yaml")])
    assert [r.ok for r in reports] == [True, False]
    with pytest.raises(ScenarioError) as e:
        load_targets([str(CORPUS / "toy_node_unreachable.yaml"),
                      str(CORPUS / "trials_typo.yaml")])
    assert len(e.value.issues) == 1 and len(e.value.warnings) == 1


def test_a_run_prints_warnings_first_and_replay_of_an_unimportable_world_is_one_line(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    src = CORPUS / "toy_node_unreachable.yaml"
    run = subprocess.run([TRIALRUN, "run", str(src), "--db", db, "--no-progress"], env=ENV,
                         text=True, capture_output=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert ": warning: no step reaches node 'cont'" in run.stderr.splitlines()[0]
    run_id = re.search(r"trialrun show (\w+)", run.stdout).group(1)
    (episode,) = Store(db).episodes(run_id)
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}  # corpus_toy is gone
    for args in (["replay", episode.id], ["run", "--resume", run_id, "--no-progress"]):
        out = subprocess.run([TRIALRUN, *args, "--db", db], env=env, text=True,
                             capture_output=True, timeout=120, cwd=tmp_path)
        assert "Traceback" not in out.stdout + out.stderr
        assert out.returncode == 2
        (line,) = [x for x in out.stderr.splitlines() if x.strip()]
        assert "unknown world 'corpus_toy:CounterWorld': cannot import module 'corpus_toy' " \
               "(ModuleNotFoundError" in line, line
