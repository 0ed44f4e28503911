"""CI: gates on any metric recover planted truths and fail loudly when they cannot judge; the
JUnit file validates against the common JUnit XML schema and a real consumer (junitparser)
reads it; exit codes tell a failed gate (1) from bad input (2) and infrastructure (3)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import RETAIL, run_source
from trialrun.analysis.data import load_run
from trialrun.analysis.summary import summarize
from trialrun.ci import (
    GateError,
    evaluate_gates,
    exit_code,
    parse_gate,
    parse_gates,
    pass_k_ci,
    write_junit,
)

# The common JUnit XML layout (as Jenkins' xUnit junit-10 schema and the consumers that follow
# it read it: testsuites > testsuite > properties | testcase > failure | error | skipped |
# system-out | system-err), written for this test with stricter types: counts are integers
# and times decimals, so a malformed number fails here although junit-10 types them loosely.
JUNIT_XSD = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
  <xs:complexType name="outcome" mixed="true">
    <xs:attribute name="message" type="xs:string"/>
    <xs:attribute name="type" type="xs:string"/>
  </xs:complexType>
  <xs:element name="testsuites">
    <xs:complexType>
      <xs:sequence>
        <xs:element ref="testsuite" minOccurs="0" maxOccurs="unbounded"/>
      </xs:sequence>
      <xs:attribute name="name" type="xs:string"/>
      <xs:attribute name="tests" type="xs:nonNegativeInteger"/>
      <xs:attribute name="failures" type="xs:nonNegativeInteger"/>
      <xs:attribute name="errors" type="xs:nonNegativeInteger"/>
      <xs:attribute name="disabled" type="xs:nonNegativeInteger"/>
      <xs:attribute name="time" type="xs:decimal"/>
    </xs:complexType>
  </xs:element>
  <xs:element name="testsuite">
    <xs:complexType>
      <xs:choice minOccurs="0" maxOccurs="unbounded">
        <xs:element name="properties">
          <xs:complexType>
            <xs:sequence>
              <xs:element name="property" minOccurs="0" maxOccurs="unbounded">
                <xs:complexType>
                  <xs:attribute name="name" type="xs:string" use="required"/>
                  <xs:attribute name="value" type="xs:string" use="required"/>
                </xs:complexType>
              </xs:element>
            </xs:sequence>
          </xs:complexType>
        </xs:element>
        <xs:element name="testcase">
          <xs:complexType>
            <xs:choice minOccurs="0" maxOccurs="unbounded">
              <xs:element name="skipped" type="outcome"/>
              <xs:element name="error" type="outcome"/>
              <xs:element name="failure" type="outcome"/>
              <xs:element name="system-out" type="xs:string"/>
              <xs:element name="system-err" type="xs:string"/>
            </xs:choice>
            <xs:attribute name="name" type="xs:string" use="required"/>
            <xs:attribute name="classname" type="xs:string"/>
            <xs:attribute name="time" type="xs:decimal"/>
            <xs:attribute name="assertions" type="xs:string"/>
            <xs:attribute name="status" type="xs:string"/>
            <xs:attribute name="file" type="xs:string"/>
            <xs:attribute name="line" type="xs:string"/>
          </xs:complexType>
        </xs:element>
        <xs:element name="system-out" type="xs:string"/>
        <xs:element name="system-err" type="xs:string"/>
      </xs:choice>
      <xs:attribute name="name" type="xs:string"/>
      <xs:attribute name="tests" type="xs:nonNegativeInteger" use="required"/>
      <xs:attribute name="failures" type="xs:nonNegativeInteger"/>
      <xs:attribute name="errors" type="xs:nonNegativeInteger"/>
      <xs:attribute name="skipped" type="xs:nonNegativeInteger"/>
      <xs:attribute name="disabled" type="xs:nonNegativeInteger"/>
      <xs:attribute name="time" type="xs:decimal"/>
      <xs:attribute name="timestamp" type="xs:string"/>
      <xs:attribute name="hostname" type="xs:string"/>
      <xs:attribute name="id" type="xs:string"/>
      <xs:attribute name="package" type="xs:string"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""

KNOWN = (RETAIL / "known_error_rates.yaml").read_text()


def _scenario(resolve: float, seeds: int = 200, trials: int = 1, name: str | None = None,
              extra_task: bool = False) -> str:
    text = KNOWN.replace("resolve: 0.10", f"resolve: {resolve}").replace(
        "lookup_order: 0.05, ", "").replace("seeds: 20", f"seeds: {seeds}").replace(
        "trials: 1", f"trials: {trials}")
    if name:
        text = text.replace("name: retail/known-error-rates", f"name: {name}")
    if extra_task:  # a second task the agent always gets right: its test case passes
        text = text.replace("agent:\n", """  - id: status-only
    customer: {name: Kofi Osei, email: kofi.o@example.com, zip: "19103"}
    orders:
      - {id: O-1202, items: [{sku: P121}], status: pending}
    request: {type: status, order_id: O-1202}
agent:
""", 1)
    return text


# --- parsing -----------------------------------------------------------------------------
@pytest.mark.parametrize("text, metric, field, op, value", [
    ("success>=0.9", "success", None, ">=", 0.9),
    ("success.lo >= 80%", "success", "lo", ">=", 0.8),
    ("pass^3>=0.7", "pass^3", None, ">=", 0.7),
    ("pass@2.hi<1", "pass@2", "hi", "<", 1.0),
    ("node:resolve>=0.95", "node:resolve", None, ">=", 0.95),
    ("node:lookup_order.lo>=.5", "node:lookup_order", "lo", ">=", 0.5),
    ("ask_f1>=0.6", "ask_f1", None, ">=", 0.6),
    ("errors==0", "errors", None, "==", 0.0),
    ("episode_cost.p90<=0.05", "episode_cost", "p90", "<=", 0.05),
])
def test_gate_expressions_parse(text, metric, field, op, value):
    g = parse_gate(text)
    assert (g.metric, g.field, g.op) == (metric, field, op)
    assert g.threshold == pytest.approx(value)


@pytest.mark.parametrize("text, says", [
    ("success=>0.9", "expected METRIC[.lo|.hi] OP NUMBER"),
    ("sucess>=0.9", "did you mean 'success'"),
    ("ask_f1.lo>=0.5", "ask_f1 has no confidence interval"),
    ("episode_cost<=1", "name a percentile"),
    ("success.p90>=1", ".p90 applies to"),
    ("pass^0>=0.5", "k in pass^k must be at least 1"),
    ("node:>=0.5", "expected METRIC"),
    ("success>=", "expected METRIC"),
])
def test_a_bad_gate_is_one_clear_line(text, says):
    with pytest.raises(GateError) as e:
        parse_gate(text)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_fail_under_is_a_success_gate():
    [g] = parse_gates(None, 0.75)
    assert (g.metric, g.op, g.threshold) == ("success", ">=", 0.75)


# --- evaluating: planted truths -----------------------------------------------------------------
def test_gates_recover_planted_truths(store):
    # resolve errs 20% of the time and every error there is fatal: success 0.8 exactly in
    # expectation, per-node accuracy of resolve 0.8; 100 seeds × 4 trials for pass^k.
    run = run_source(store, _scenario(0.2, seeds=100, trials=4)).run_id
    d = load_run(store, run)
    s = summarize(d)
    rate = s.success.rate
    assert 0.74 < rate < 0.86  # 400 episodes around the planted 0.8
    results = evaluate_gates(parse_gates([
        f"success>={rate - 0.001}", f"success<={rate + 0.001}", "success.lo>=0.7",
        "success.hi<=0.9", "node:resolve>=0.74", "node:resolve<=0.86", "pass^4<=0.6",
        "pass^1>=0.74", "node:resolve.lo>=0.7", "errors==0", "episode_steps.p50<=10"]), s, d)
    assert all(r.passed for r in results), [r.line() for r in results if not r.passed]
    # pass^k by hand from the stored outcomes: the mean over seeds of C(c, k)/C(4, k).
    from math import comb

    by_seed: dict[int, int] = {}
    for seed, ok in zip(d.seed, d.success, strict=True):
        by_seed[int(seed)] = by_seed.get(int(seed), 0) + int(ok)
    for k in (1, 2, 3, 4):
        hand = sum(comb(c, k) / comb(4, k) for c in by_seed.values()) / len(by_seed)
        [r] = evaluate_gates([parse_gate(f"pass^{k}>=0")], s, d)
        assert r.value == pytest.approx(hand)
    # A CI at a k the report has none for is computed the same way (bootstrap over tasks).
    lo, hi = pass_k_ci(d, 2, hat=True)
    [r] = evaluate_gates([parse_gate("pass^2.lo>=0")], s, d)
    assert r.value == pytest.approx(lo) and lo < s.trials[1].pass_hat_k < hi
    failing = evaluate_gates(parse_gates(["success>=0.95", "node:resolve.lo>=0.9"]), s, d)
    assert not any(r.passed for r in failing)
    assert exit_code(failing, 0) == 1 and exit_code(results, 0) == 0
    assert exit_code(results, 3) == 3 and exit_code([], 3) == 0


def test_a_gate_that_cannot_judge_fails_and_an_unknown_node_is_bad_input(store):
    run = run_source(store, _scenario(0.2, seeds=10)).run_id
    d = load_run(store, run)
    s = summarize(d)
    [f1, p5] = evaluate_gates(parse_gates(["ask_precision>=0.5", "pass^5>=0.1"]), s, d)
    assert not f1.passed and f1.value is None and "undefined" in f1.note
    assert not p5.passed and "no task has 5 scored trials" in p5.note
    with pytest.raises(GateError, match="no graded node 'resolv'; did you mean 'resolve'"):
        evaluate_gates([parse_gate("node:resolv>=0.9")], s, d)


# --- JUnit ---------------------------------------------------------------------------------------
def _validate(path):
    import xmlschema

    xmlschema.XMLSchema(JUNIT_XSD).validate(str(path))


def test_junit_validates_and_a_real_consumer_reads_failures_with_their_first_error(
        store, tmp_path):
    from junitparser import Error, Failure, JUnitXml

    run = run_source(store, _scenario(0.3, seeds=20, extra_task=True)).run_id
    gates = evaluate_gates(parse_gates(["success>=0.99", "errors==0"]), summarize(
        load_run(store, run)), None)
    path = write_junit(store, run, tmp_path / "out.xml", gates=gates)
    _validate(path)
    xml = JUnitXml.fromfile(str(path))
    suites = {s.name: s for s in xml}
    suite = suites["retail/known-error-rates"]
    cases = {c.name: c for c in suite}
    assert set(cases) == {"refund-mat", "status-only"}
    assert cases["status-only"].is_passed
    refund = cases["refund-mat"]
    [failure] = [r for r in refund.result if isinstance(r, Failure)]
    eps = [e for e in store.episodes(run) if e.task == "refund-mat" and e.success is False]
    assert failure.message.startswith(f"{len(eps)} of 20 episode(s) failed")
    assert "first error at step 3, node resolve" in failure.message
    assert f"trialrun show {eps[0].id}" in failure.message
    assert all(e.id in failure.text for e in eps)
    assert refund.classname == "retail/known-error-rates" and float(refund.time) > 0
    assert suite.tests == 2 and suite.failures == 1 and not any(
        isinstance(r, Error) for c in suite for r in c.result)
    gate_cases = {c.name: c for c in suites["trialrun gates"]}
    assert not gate_cases["success>=0.99"].is_passed and gate_cases["errors==0"].is_passed
    assert xml.tests == 4 and xml.failures == 2


def test_junit_keeps_untrusted_text_as_text(store, tmp_path):
    from junitparser import JUnitXml

    # A task id with markup, quotes and a control character (YAML's "\a" is BEL).
    text = _scenario(0.5, seeds=6).replace("id: refund-mat", 'id: "x\\"<y>&\\a ]]>"')
    run = run_source(store, text).run_id
    path = write_junit(store, run, tmp_path / "out.xml")
    _validate(path)
    [case] = list(next(iter(JUnitXml.fromfile(str(path)))))
    assert case.name == 'x"<y>&\ufffd ]]>'


# --- the command line: import carries --gate and --junit ----------------------------------
def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "trialrun.cli",
                           *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def _tau(tmp_path, rewards: dict[tuple[int, int], float], errors=()):
    rows = [{"task_id": t, "trial": k, "reward": r, "info": {}, "traj": []}
            for (t, k), r in rewards.items()]
    rows += [{"task_id": t, "trial": k, "reward": 0.0,
              "info": {"error": "litellm.RateLimitError: 429", "traceback": "..."}, "traj": []}
             for t, k in errors]
    path = tmp_path / "tau.json"
    path.write_text(json.dumps(rows))
    return path


def test_exit_codes_gate_failed_bad_input_infrastructure(tmp_path):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    good = _tau(tmp_path, {(t, k): float(t % 4 != 0) for t in range(20) for k in range(2)})
    ok = _cli("import", "tau-bench", str(good), "--db", db, "--gate", "success>=0.7",
              "--junit", str(tmp_path / "j.xml"), "--json", str(tmp_path / "r.json"),
              "--no-progress", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "PASS  success = 0.75 (needs >= 0.7)" in ok.stdout
    assert json.loads((tmp_path / "r.json").read_text())["gates"][0]["passed"] is True
    _validate(tmp_path / "j.xml")
    failed = _cli("import", "tau-bench", str(good), "--db", db, "--gate", "success>=0.7",
                  "--gate", "pass^2.lo>=0.9", "--no-progress", cwd=tmp_path)
    assert failed.returncode == 1 and "1 gate(s) failed: pass^2.lo>=0.9" in failed.stderr
    bad = _cli("import", "tau-bench", str(good), "--db", db, "--gate", "succes>=0.7",
               cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean 'success'" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    infra = _tau(tmp_path, {(t, 0): 1.0 for t in range(5)}, errors=[(5, 0)])
    out = _cli("import", "tau-bench", str(infra), "--db", db, "--gate", "success>=0.5",
               "--no-progress", cwd=tmp_path)
    assert out.returncode == 3 and "infrastructure error" in out.stderr
    # Without gates there is nothing to judge: exit 0.
    assert _cli("import", "tau-bench", str(infra), "--db", db, "--no-progress",
                cwd=tmp_path).returncode == 0
