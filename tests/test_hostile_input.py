"""Hostile input (issue 14): whatever the bytes of a scenario file, validation gives one clear
file:line:column error per problem, never a traceback, a hang or a wrong acceptance; graders
that cannot judge fail loudly; expressions that fail at run time are the grade's error.

The corpus (`tests/corpus/`, checked by test_validation_corpus.py) holds the text cases; this
file holds what a text corpus cannot (bytes that are not UTF-8, huge and generated files,
timing bounds, the command line's printing) and a property-based fuzz test over the library.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from trialrun.scenarios.loader import LIBRARY, ScenarioError, check_targets, load_scenario
from trialrun.scenarios.yaml_source import MAX_CHARS, YamlSyntaxError, load_yaml

CORPUS = Path(__file__).parent / "corpus"
TRIALRUN = str(Path(sys.executable).with_name("trialrun"))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(CORPUS), *filter(None, [os.environ.get("PYTHONPATH")])])}
GOOD = LIBRARY / "retail" / "order_status.yaml"


def validate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRIALRUN, "validate", *args], cwd=cwd, env=ENV, text=True,
                          capture_output=True, timeout=120)


def one_error(path: Path):
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    (issue,) = e.value.issues
    return issue


# --- bytes ----------------------------------------------------------------------------------
def test_non_utf8_is_one_error_at_its_line_and_column(tmp_path):
    p = tmp_path / "latin1.yaml"
    p.write_bytes(GOOD.read_bytes().replace(b"A read-only request",
                                            b"A read-only r\xe9quest"))
    issue = one_error(p)
    assert (issue.line, issue.column) == (2, 27)
    assert "not UTF-8 text: byte 0xe9" in issue.message


def test_a_batch_with_one_non_utf8_file_reports_it_and_goes_on(tmp_path):
    (tmp_path / "a_good.yaml").write_bytes(GOOD.read_bytes())
    (tmp_path / "b_bad.yaml").write_bytes(b"name: x\n\xff\xfe: 1\n")
    (tmp_path / "c_good.yaml").write_bytes(GOOD.read_bytes().replace(
        b"retail/order-status", b"retail/order-status-2"))
    out = validate(".", cwd=tmp_path)
    assert "Traceback" not in out.stdout + out.stderr
    assert out.returncode == 2
    assert out.stdout.count("ok  ") == 2, out.stdout
    assert out.stderr.startswith("error: b_bad.yaml:2:1: not UTF-8 text"), out.stderr


def test_absurdly_large_files_are_refused_before_reading(tmp_path):
    p = tmp_path / "huge.yaml"
    with p.open("wb") as f:
        f.write(b"name: x\ndescription: '")
        f.truncate(MAX_CHARS + 10)
    t0 = time.perf_counter()
    issue = one_error(p)
    assert time.perf_counter() - t0 < 0.5
    assert (issue.line, issue.column) == (1, 1) and "at most" in issue.message
    with pytest.raises(YamlSyntaxError, match="characters long"):
        load_yaml("#" * (MAX_CHARS + 1))


def test_a_large_legitimate_file_loads_quickly(tmp_path):
    """2,000 listed tasks (a ~0.5 MB file) validate in seconds, not minutes."""
    task = ("  - id: t{i}\n    customer: {{name: Ana Ruiz, email: a@example.com, zip: '94110'}}\n"
            "    orders: [{{id: O-{i}, items: [{{sku: P122}}], status: processing}}]\n"
            "    request: {{type: status, order_id: O-{i}}}\n")
    text = ("name: big\nworld: {type: retail}\nagent: {type: scripted:retail}\ntasks:\n"
            + "".join(task.format(i=i) for i in range(2000)))
    p = tmp_path / "big.yaml"
    p.write_text(text)
    t0 = time.perf_counter()
    loaded = load_scenario(p)
    assert len(loaded.tasks) == 2000
    assert time.perf_counter() - t0 < 10


# --- YAML structures ------------------------------------------------------------------------
def test_alias_bomb_is_refused_in_milliseconds():
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]" for p, c in zip("abcdefgh", "bcdefghi",
                                                                   strict=True)]
    t0 = time.perf_counter()
    with pytest.raises(YamlSyntaxError, match="aliases expand") as e:
        load_yaml("\n".join(levels) + "\n")
    assert time.perf_counter() - t0 < 0.2
    assert e.value.position is not None and e.value.position.line == 6


@pytest.mark.parametrize(("text", "line", "message"), [
    ("a: " + "[" * 500 + "]" * 500 + "\n", 1, "nested more than"),
    ("".join("  " * i + f"k{i}:\n" for i in range(500)) + "  " * 500 + "v\n", 65,
     "nested more than"),
    ("a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n", 1, "nested more than"),
    ("a: &x [1, *x]\n", 1, "recursive alias"),
    ("a: &x {b: {c: *x}}\n", 1, "recursive alias"),
    ("a: *nope\n", 1, "undefined alias"),
    ("a:\n  <<: 5\n", 2, "merge key"),
    ("a:\n  <<: [1, 2]\n", 2, "merge key"),
    ("a: 1\nb: x\x01y\n", 2, "control character (U+0001)"),
    ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a'"),
    ("base: &b {x: 1}\nc:\n  <<: *b\n  y: 1\n  y: 2\n", 5, "duplicate key 'y'"),
])
def test_yaml_structures_give_one_located_error(text, line, message):
    t0 = time.perf_counter()
    with pytest.raises(YamlSyntaxError, match=re.escape(message)) as e:
        load_yaml(text)
    assert time.perf_counter() - t0 < 0.5
    assert e.value.position is not None and e.value.position.line == line


def test_a_merge_key_overridden_later_is_not_a_duplicate(tmp_path):
    data, _ = load_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n"
                        "d: {<<: [{x: 1}, {x: 2, z: 3}]}\ne: {<<: *b}\nf: {<<: *b, y: 9}\n")
    assert data["c"] == {"x": 3, "y": 2}
    assert data["d"] == {"x": 1, "z": 3}  # the first mapping merged wins, as YAML says
    assert data["e"] == {"x": 1, "y": 2} and data["f"] == {"x": 1, "y": 9}
    p = tmp_path / "merge.yaml"
    p.write_text(GOOD.read_text() + "budgets:\n  <<: &defaults {max_steps: 20, "
                 "max_wall_time: 60}\n  max_steps: 30\n")
    assert load_scenario(p).scenario.budgets.max_steps == 30


def test_markup_and_emoji_codes_in_errors_are_printed_verbatim(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text(GOOD.read_text() + '"[/bold] :100: [red]x": 1\n')
    out = validate(str(p), cwd=tmp_path)
    assert "Traceback" not in out.stdout + out.stderr
    assert out.returncode == 2
    assert '[/bold] :100: [red]x: unknown key' in out.stderr, out.stderr
    assert "\N{HUNDRED POINTS SYMBOL}" not in out.stderr


# --- graders that cannot judge fail loudly --------------------------------------------------
def _state_grade(outcome: dict, path: str | None):
    from trialrun.graders.base import OutcomeContext
    from trialrun.graders.builtin import StateEquals, StateEqualsOptions

    g = StateEquals(StateEqualsOptions(path=path))
    return anyio.run(g.grade_outcome, OutcomeContext(task={}, outcome=outcome,
                                                     end_reason="finished", steps=1))


def test_state_equals_with_a_path_that_is_not_there_never_passes():
    outcome = {"state": {"orders": {"O1": {"status": "refunded"}}},
               "expected_state": {"orders": {"O1": {"status": "refunded"}}}}
    g = _state_grade(outcome, "ordrs")
    assert not g.passed and g.reason == "could not judge: no path 'ordrs' in the expected " \
        "final state"
    assert _state_grade(outcome, "orders").passed
    assert _state_grade(outcome, "orders.O1.status").passed
    assert not _state_grade(outcome, "orders.O2.status").passed
    assert not _state_grade({"state": {}, "expected_state": outcome["expected_state"]},
                            "orders").passed
    g = _state_grade({"state": {}}, None)
    assert not g.passed and g.reason.startswith("could not judge")


def test_state_equals_in_a_world_without_expected_state_is_a_load_error(monkeypatch):
    monkeypatch.syspath_prepend(str(CORPUS))
    issue = one_error(CORPUS / "state_equals_no_expected_state.yaml")
    assert "states no expected final state" in issue.message


# --- expressions that fail at run time are the grade's error --------------------------------
def test_an_expression_failing_in_an_episode_is_a_failed_grade_not_an_infra_error(tmp_path):
    from trialrun.runner import RunOptions, run_episodes
    from trialrun.store import Store

    p = tmp_path / "s.yaml"
    p.write_text(GOOD.read_text().replace(
        "graders:\n", "graders:\n  - {type: assert, expr: \"int(task.id) > 0\"}\n"
        "  - {type: assert, expr: \"len(task.id * 10**9) > 0\"}\n").replace(
        "trials: 2\nseeds: 3\n", ""))
    loaded = [load_scenario(p)]
    summary = anyio.run(lambda: run_episodes(Store("sqlite://"), loaded,
                                             options=RunOptions(), keep_results=True))
    assert summary.errors == 0
    (result,) = summary.results
    assert result.success is False
    failed = [g for g in result.outcome_grades if not g.passed]
    assert len(failed) == 2 and all(g.reason.startswith("could not evaluate") for g in failed)


# --- fuzz: mutated library scenarios never give a traceback ---------------------------------
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

LIBRARY_FILES = sorted(LIBRARY.glob("*/*.yaml"))
PIECES = [b"\x00", b"\x07", b"\x1b[31m", b"\xff", b"\xe9", b"\xc3", b"\t", b"\n", b": ",
          b"- ", b"&a ", b"*a", b"<<: ", b"<<: 5", b"[", b"]", b"{", b"}", b"'", b'"', b"#",
          b"!!python/object:os.system ", b"? ", b"---\n", b"...", b"%YAML 1.1\n", b"true",
          b"1e400", b"10**10**10", b"=int('x')", b"18446744073709551616", b"-1", b"[/bold]",
          b":100:", b"&b [*a, *a, *a, *a]", b"    ", b"\xef\xbb\xbf", b"\r\n", b"\\u0000"]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(LIBRARY_FILES)).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate_line"]))
        if kind == "insert":
            data[at:at] = draw(st.sampled_from(PIECES) | st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif kind == "replace":
            data[at:at + 1] = draw(st.sampled_from(PIECES))
        else:
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            end = len(data) if end < 0 else end + 1
            data[end:end] = data[start:end]
    return bytes(data)


@hypothesis.settings(max_examples=150, deadline=2000, database=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(data=mutated())
def test_fuzz_mutated_scenarios_never_crash(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    p.write_bytes(data)
    t0 = time.perf_counter()
    (report,) = check_targets([str(p)])  # never raises
    assert time.perf_counter() - t0 < 2
    for issue in report.issues:
        assert "could not validate this file" not in issue.message, issue
        assert "Traceback" not in issue.message
        if data.strip():
            assert issue.line is not None and issue.column is not None, issue
