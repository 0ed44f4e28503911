"""LLM judges against a judge of planted quality (tests/fake_judge.py, a real loopback
server): calibration recovers the planted sensitivity and specificity; corrected rates cover
the truth about 95% of the time while the raw rate is biased by the planted error; pairwise
judging reports a planted position bias; re-grading costs nothing the second time; a changed
rubric invalidates the calibration and the report says so; a judge that cannot judge never
passes; bad judge and golden files are one line with file:line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import typer
import yaml
from rich.console import Console
from typer.testing import CliRunner

from tests.fake_judge import PlantedJudge, judge_server, unit
from tests.helpers import RETAIL, run_source
from trialrun.analysis.data import load_run
from trialrun.analysis.stats import cohens_kappa, rogan_gladen, wilson
from trialrun.analysis.summary import summarize
from trialrun.calibration import (
    attach_judges,
    judge_report,
    kappa_interval,
    ppi_rate,
    regrade,
    rogan_gladen_rate,
    self_agreement,
)
from trialrun.cli_judge import register
from trialrun.errors import InfraError
from trialrun.graders.judge import (
    COULD_NOT_JUDGE,
    JudgeOptions,
    LLMJudge,
    judge_many,
    load_judge,
    outcome_context,
)
from trialrun.graders.pairwise import PairwiseJudge, PairwiseOptions, pairwise_summary
from trialrun.html_report import render_html
from trialrun.report import render_summary
from trialrun.trajectory import (
    Decision,
    EndReason,
    EpisodeKey,
    EpisodeResult,
    Step,
    ToolResult,
    Trust,
)

FAST = {"backoff_s": 0.001, "max_backoff_s": 0.002, "timeout_s": 2.0}


# --- helpers -------------------------------------------------------------------------------
def cli() -> typer.Typer:
    app = typer.Typer()
    export = typer.Typer()
    app.add_typer(export, name="export")

    @app.callback()
    def _root() -> None:
        pass

    register(app, export)
    return app


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli(), list(args), catch_exceptions=False)


def ticket_truth(passing: set[str]):
    """The hidden truth of a `ticket <id>` context: is the ticket's reply a good one."""
    def look(text: str) -> bool | None:
        m = re.search(r"ticket (\w+)", text)
        return (m.group(1) in passing) if m else None
    return look


def write_judge(path: Path, base_url: str, **fields: Any) -> Path:
    doc = {"name": "replies", "node": "reply", "model": "judge", "base_url": base_url,
           "rubric": "The reply resolves the ticket.", **FAST, **fields}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def fake_run(store, cases: list[str], *, agent: str = "a", texts: dict[str, str] | None = None,
             scenario: str = "tickets") -> str:
    """A stored run with one reply per episode: `ticket <case>` (or `texts[case]`)."""
    run_id = store.create_run(["test"], {scenario: f"name: {scenario}\n"}, len(cases), {})
    for i, c in enumerate(cases):
        text = (texts or {}).get(c, f"ticket {c}")
        store.save_episode(run_id, EpisodeResult(
            key=EpisodeKey(scenario=scenario, task="t", seed=i, trial=0), agent=agent,
            end_reason=EndReason.finished, success=True,
            steps=[Step(index=0, node="reply", decision=Decision(
                kind="message", node="reply", text=text))]))
    return run_id


def golden_file(path: Path, truth: dict[str, bool], labels: dict[str, bool] | None = None,
                ids: dict[str, str] | None = None) -> Path:
    """A golden set of `ticket <case>` contexts labelled with the truth."""
    examples = []
    for c, t in truth.items():
        ex: dict[str, Any] = {"label": "pass" if (labels or truth)[c] else "fail",
                              "explanation": "resolves it" if t else "leaves it open",
                              "context": {"node": "reply", "task": {"id": "t"},
                                          "decision": {"kind": "message",
                                                       "text": f"ticket {c}"}}}
        if ids and c in ids:
            ex["id"] = ids[c]
        examples.append(ex)
    path.write_text(yaml.safe_dump({"judge": "replies", "examples": examples}))
    return path


def draw(n: int, rate: float, prefix: str, salt: str = "") -> dict[str, bool]:
    return {f"{prefix}{i}": unit(prefix, i, salt) < rate for i in range(n)}


def line_of(store, run_id: str, grader: str = "replies"):
    report = judge_report(store, run_id)
    assert report is not None
    return next(x for x in report.lines if x.grader == grader)


# --- the statistics, on worked examples ----------------------------------------------------
def test_rogan_gladen_with_an_exact_calibration_is_analysis_md():
    # ANALYSIS.md: Se 0.95, Sp 0.80, observed 0.70, n 1000 -> 0.666667, SE 0.019322. With a
    # calibration of a million examples its own sampling error vanishes.
    r = rogan_gladen_rate(700, 1000, 950_000, 200_000, 50_000, 800_000)
    assert r.estimate == pytest.approx(0.666667, abs=1e-6)
    assert r.se == pytest.approx(0.019322, abs=2e-5)
    # a small golden set widens the interval
    small = rogan_gladen_rate(700, 1000, 95, 20, 5, 80)
    assert small.se > 1.5 * r.se
    assert "no better than chance" in rogan_gladen_rate(50, 100, 5, 5, 5, 5)


def test_kappa_and_self_agreement_vectors():
    k, lo, hi = kappa_interval(40, 10, 5, 45)  # ANALYSIS.md: [[40, 10], [5, 45]] -> 0.7
    assert k == pytest.approx(0.7)
    assert lo < 0.7 < hi
    # 3 samples: an item with 3/3 or 0/3 agrees fully; 2/3: one pair in three agrees
    agree, alpha = self_agreement([3, 0, 2], 3)
    assert agree == pytest.approx((1 + 1 + 1 / 3) / 3)
    assert alpha < agree
    assert self_agreement([1, 0], 1) == (None, None)
    # PPI: judge 0.7 on 1000 unlabelled; humans 0.66, judge 0.72 on 100 labelled -> 0.64
    ju = [1.0] * 700 + [0.0] * 300
    jl = [1.0] * 72 + [0.0] * 28
    hl = [1.0] * 66 + [0.0] * 6 + [0.0] * 28  # humans fail 6 the judge passed
    p = ppi_rate(ju, jl, hl)
    assert p.estimate == pytest.approx(0.64)
    # SE² = var(judge, unlabelled)/1000 + var(person − judge)/100, sample variances
    rect_var = (6 * 0.94 ** 2 + 94 * 0.06 ** 2) / 99
    assert p.se == pytest.approx(np.sqrt(0.21 * 1000 / 999 / 1000 + rect_var / 100))
    assert (p.lo, p.hi) == pytest.approx((0.64 - 1.959964 * p.se, 0.64 + 1.959964 * p.se))


def test_corrected_rates_cover_the_truth_and_raw_is_biased():
    """Compute only, over 400 seeds: a golden set of 300 (half pass) measures a judge of
    Se 0.9, Sp 0.75; a run of 600 items with true pass rate 0.35 is judged by it. The
    corrected CIs cover 0.35 about 95% of the time; the raw rate is off by the planted
    bias Se·π + (1 − Sp)(1 − π) − π = 0.1275 and its CI never covers the truth."""
    se, sp, pi, seeds = 0.9, 0.75, 0.35, 400
    hits = {"rogan_gladen": 0, "ppi": 0, "raw": 0, "known_se_sp": 0}
    bias = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        h = rng.random(300) < 0.5
        u = rng.random(300)
        j = np.where(h, u < se, u >= sp)
        tp, fp = int((j & h).sum()), int((j & ~h).sum())
        fn, tn = int((~j & h).sum()), int((~j & ~h).sum())
        truth = rng.random(600) < pi
        u = rng.random(600)
        judged = np.where(truth, u < se, u >= sp)
        k = int(judged.sum())
        rg = rogan_gladen_rate(k, 600, tp, fp, fn, tn)
        hits["rogan_gladen"] += rg.lo <= pi <= rg.hi
        naive = rogan_gladen(k / 600, tp / (tp + fn), tn / (tn + fp), 600)
        hits["known_se_sp"] += abs(naive.value - pi) <= 1.959964 * naive.se
        lo, hi = wilson(k, 600)
        hits["raw"] += lo <= pi <= hi
        bias.append(k / 600 - pi)
        labelled = np.zeros(600, dtype=bool)
        labelled[rng.choice(600, 100, replace=False)] = True
        p = ppi_rate(judged[~labelled].astype(float).tolist(),
                     judged[labelled].astype(float).tolist(),
                     truth[labelled].astype(float).tolist())
        hits["ppi"] += p.lo <= pi <= p.hi
    coverage = {k: v / seeds for k, v in hits.items()}
    print("coverage over", seeds, "seeds:", coverage, "raw bias", np.mean(bias))
    assert 0.92 <= coverage["rogan_gladen"] <= 0.985
    assert 0.92 <= coverage["ppi"] <= 0.985
    assert coverage["raw"] < 0.05
    assert np.mean(bias) == pytest.approx(se * pi + (1 - sp) * (1 - pi) - pi, abs=0.01)
    # Treating the golden set's Se and Sp as exact (ANALYSIS.md's SE alone) undercovers:
    # why the CI adds their sampling error.
    assert coverage["known_se_sp"] < 0.9


# --- calibration over HTTP -----------------------------------------------------------------
def test_calibration_recovers_planted_sensitivity_and_specificity(tmp_path):
    truth = draw(400, 0.5, "g")
    judge = PlantedJudge(ticket_truth({c for c, t in truth.items() if t}), 0.85, 0.7)
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with judge_server(judge) as fake:
        jpath = write_judge(tmp_path / "judge.yaml", fake.base_url)
        gpath = golden_file(tmp_path / "golden.yaml", truth)
        out = tmp_path / "cal.json"
        r = invoke("calibrate", str(jpath), str(gpath), "--db", db, "--json", str(out))
    assert r.exit_code == 0, r.output
    cal = json.loads(out.read_text())
    print("planted Se 0.85, Sp 0.70; measured", cal["sensitivity"], cal["specificity"])
    assert cal["examples"] == 400 and fake.requests == 400
    assert cal["sensitivity"]["lo"] <= 0.85 <= cal["sensitivity"]["hi"]
    assert cal["specificity"]["lo"] <= 0.70 <= cal["specificity"]["hi"]
    table = [[cal["tp"], cal["fp"]], [cal["fn"], cal["tn"]]]
    assert cal["kappa"] == pytest.approx(cohens_kappa(table))
    assert cal["kappa_lo"] < cal["kappa"] < cal["kappa_hi"]
    assert len(cal["wrong"]) == cal["fp"] + cal["fn"]
    assert cal["wrong"][0]["where"].startswith(f"{gpath}:")
    for word in ("agreement with people", "Cohen's κ", "sensitivity", "specificity",
                 "examples the judge got wrong"):
        assert word in r.output


def test_a_score_scale_judge_passes_at_its_threshold(tmp_path):
    truth = draw(40, 0.5, "s")
    judge = PlantedJudge(ticket_truth({c for c, t in truth.items() if t}), scale=True)
    scale = {"max": 5, "pass_at": 4, "anchors": {1: "wrong", 3: "partly", 5: "complete"}}
    with judge_server(judge) as fake:
        j = LLMJudge(JudgeOptions(model="judge", base_url=fake.base_url, rubric="resolves it",
                                  scale=scale, **FAST), "scored")
        contexts = [{"decision": {"text": f"ticket {c}"}} for c in truth]
        results = anyio.run(judge_many, j, contexts)
    assert [r.passed for r in results] == list(truth.values())
    assert {r.scores[0] for r in results} == {5, 2}
    assert "SCORE: <a whole number from 1 to 5>" in j.messages(contexts[0])[1]["content"]


# --- re-grading a stored run ---------------------------------------------------------------
def test_regrading_twice_makes_no_request_the_second_time(store, tmp_path):
    cases = list(draw(60, 0.5, "r"))
    run_id = fake_run(store, cases)
    judge = PlantedJudge(ticket_truth(set(cases[::2])), 0.9, 0.8)
    with judge_server(judge) as fake:
        jf = load_judge(write_judge(tmp_path / "judge.yaml", fake.base_url, samples=3))
        first = anyio.run(regrade, store, run_id, jf)
        grades1 = [(g.episode_id, g.passed, g.score, g.reason) for g in store.judge_grades(run_id)]
        n = fake.requests
        jf2 = load_judge(tmp_path / "judge.yaml")  # a new process would load it again
        second = anyio.run(regrade, store, run_id, jf2)
        grades2 = [(g.episode_id, g.passed, g.score, g.reason) for g in store.judge_grades(run_id)]
    assert first.requests == n == 180 and first.stored
    assert second.requests == 0 and second.cached == 180 and fake.requests == n
    assert grades1 == grades2 and len(grades1) == 60
    line = line_of(store, run_id)
    assert line.source == "regrade" and line.samples == 3
    assert line.self_agreement is not None and line.self_agreement < 1


def test_grade_command_stores_grades_the_report_shows(store, tmp_path):
    cases = list(draw(30, 0.5, "c"))
    run_id = fake_run(store, cases)
    with judge_server(PlantedJudge(ticket_truth(set(cases[:10])))) as fake:
        jpath = write_judge(tmp_path / "judge.yaml", fake.base_url)
        out = tmp_path / "report.json"
        r = invoke("grade", run_id, "--grader", str(jpath), "--db", store.url, "--no-progress",
                   "--json", str(out))
    assert r.exit_code == 0, r.output
    assert "30 item(s), 30 judged (10 passed)" in r.output
    assert "LLM judges" in r.output and "judge pass rate (raw)" in r.output
    judges = json.loads(out.read_text())["judges"]
    (line,) = judges["lines"]
    assert line["raw"]["k"] == 10 and line["raw"]["n"] == 30 and line["believe"] == "raw"


def test_corrected_success_from_calibration_and_from_a_labelled_subset(store, tmp_path):
    """A run of 400 replies, 30% truly good, judged by Se 0.9 / Sp 0.8: the raw rate is
    biased up; Rogan–Gladen from a 300-example golden set covers the truth; then people
    label a random sample of the run (export golden --sample) and PPI takes over."""
    run_truth = draw(400, 0.3, "t", "run")
    gold_truth = draw(300, 0.5, "g", "gold")
    good = {c for c, t in {**run_truth, **gold_truth}.items() if t}
    run_id = fake_run(store, list(run_truth))
    true_rate = sum(run_truth.values()) / len(run_truth)
    with judge_server(PlantedJudge(ticket_truth(good), 0.9, 0.8)) as fake:
        jpath = write_judge(tmp_path / "judge.yaml", fake.base_url)
        assert invoke("grade", run_id, "-g", str(jpath), "--db", store.url,
                      "--no-progress").exit_code == 0
        r = invoke("calibrate", str(jpath), str(golden_file(tmp_path / "gold.yaml", gold_truth)),
                   "--db", store.url)
        assert r.exit_code == 0, r.output
        line = line_of(store, run_id)
        assert line.raw.rate > true_rate + 0.08  # biased by the judge's false passes
        rg = line.rogan_gladen
        assert line.believe == "rogan_gladen" and rg.lo <= true_rate <= rg.hi
        # people label a random sample of 100 of the run's replies
        sample = tmp_path / "sample.yaml"
        assert invoke("export", "golden", run_id, "--node", "reply", "--sample", "100",
                      "--db", store.url, "-o", str(sample)).exit_code == 0
        doc = yaml.safe_load(sample.read_text())
        for ex in doc["examples"]:
            case = ex["context"]["decision"]["text"].split()[1]
            ex["label"] = "pass" if run_truth[case] else "fail"
        sample.write_text(yaml.safe_dump(doc))
        r = invoke("calibrate", str(jpath), str(sample), "--db", store.url)
        assert r.exit_code == 0 and "labels of a run's items" in r.output
    line = line_of(store, run_id)
    assert line.believe == "ppi" and line.ppi.n_labelled == 100
    assert line.ppi.lo <= true_rate <= line.ppi.hi
    assert "random sample" in line.why
    print(f"truth {true_rate:.3f}; raw {line.raw.rate:.3f}; RG {rg.estimate:.3f} "
          f"[{rg.lo:.3f}, {rg.hi:.3f}]; PPI {line.ppi.estimate:.3f} "
          f"[{line.ppi.lo:.3f}, {line.ppi.hi:.3f}]")


def test_a_changed_rubric_invalidates_the_calibration_and_the_report_says_so(store, tmp_path):
    cases = draw(80, 0.5, "v")
    run_id = fake_run(store, list(cases))
    good = {c for c, t in cases.items() if t}
    with judge_server(PlantedJudge(ticket_truth(good), 0.9, 0.9)) as fake:
        jpath = write_judge(tmp_path / "judge.yaml", fake.base_url)
        invoke("grade", run_id, "-g", str(jpath), "--db", store.url, "--no-progress")
        invoke("calibrate", str(jpath), str(golden_file(tmp_path / "g.yaml", cases)), "--db",
               store.url)
        assert line_of(store, run_id).rogan_gladen is not None
        before = fake.requests
        write_judge(jpath, fake.base_url, rubric="The reply resolves the ticket politely.")
        r = invoke("grade", run_id, "-g", str(jpath), "--db", store.url, "--no-progress")
        assert fake.requests - before == 80  # every prompt changed: every item asked again
        again = fake.requests
        write_judge(jpath, fake.base_url)  # the first rubric again: all from the cache
        invoke("grade", run_id, "-g", str(jpath), "--db", store.url, "--no-progress")
        assert fake.requests == again
        write_judge(jpath, fake.base_url, rubric="The reply resolves the ticket politely.")
        r = invoke("grade", run_id, "-g", str(jpath), "--db", store.url, "--no-progress")
    line = line_of(store, run_id)
    assert line.calibration is None and line.rogan_gladen is None and line.believe == "none"
    assert "the rubric or prompt" in line.calibration_stale
    assert "changed since its calibration" in r.output.replace("\n", " ").replace("│", "")
    s = attach_judges(summarize(load_run(store, run_id)), store, run_id)
    assert "changed since its calibration" in render_html(s)


# --- judges inside a run, and judges that cannot judge -------------------------------------
def retail_with_judges(base_url: str, **judge: Any) -> str:
    doc = yaml.safe_load((RETAIL / "refund_in_window.yaml").read_text())
    spec = {"type": "llm_judge", "name": "polite", "model": "judge", "base_url": base_url,
            "rubric": "The reply is polite.", **FAST, **judge}
    doc["nodes"] = {"reply": {"graders": [spec]}}
    doc["graders"] = [{"type": "state_equals", "path": "orders"},
                      {**spec, "name": "outcome_ok"}]
    doc["seeds"], doc["trials"] = 2, 1
    return yaml.safe_dump(doc)


def test_judges_in_a_scenario_grade_noisy_apart_from_trusted(store):
    judge = PlantedJudge(lambda text: "refund" in text.lower())
    with judge_server(judge) as fake:
        summary = run_source(store, retail_with_judges(fake.base_url), retry_backoff_s=0.0)
    ep = summary.results[0]
    reply = next(st for st in ep.steps if st.node == "reply")
    noisy = [g for g in reply.grades if g.trust == Trust.noisy]
    assert [g.grader for g in noisy] == ["polite"]
    assert noisy[0].reason.startswith("judge: ") and "rubric" in noisy[0].reason
    trusted = [g.passed for g in reply.grades if g.trust == Trust.trusted]
    assert trusted and reply.passed is all(trusted)  # the trusted verdict alone
    assert {g.grader: g.trust for g in ep.outcome_grades}["outcome_ok"] == Trust.noisy
    report = judge_report(store, summary.run_id)
    assert {(x.grader, x.scope, x.source) for x in report.lines} == {
        ("polite", "node", "run"), ("outcome_ok", "outcome", "run")}
    assert report.judged_success == 0  # state_equals is trusted: success does not rest on it
    console = Console(record=True, width=100)
    render_summary(attach_judges(summarize(load_run(store, summary.run_id)), store,
                                 summary.run_id), console)
    assert "LLM judges" in console.export_text()


def test_a_judge_endpoint_that_stays_down_is_an_infrastructure_error(store, tmp_path):
    with judge_server(PlantedJudge(lambda _: True)) as fake:
        fake.fail("judge", "503")
        summary = run_source(store, retail_with_judges(fake.base_url, max_attempts=2),
                             retry_backoff_s=0.0, max_attempts=1)
        assert all(ep.end_reason == EndReason.error and ep.success is None
                   for ep in summary.results)
        assert "judge 'polite'" in summary.results[0].error
        run_id = fake_run(store, ["a", "b"])
        jpath = write_judge(tmp_path / "judge.yaml", fake.base_url, max_attempts=2)
        r = invoke("grade", run_id, "-g", str(jpath), "--db", store.url, "--no-progress")
    assert r.exit_code == 1
    assert "infrastructure error, nothing stored" in r.output
    assert store.judge_grades(run_id) == []


def test_an_answer_without_a_verdict_is_not_judged_never_a_pass(store, tmp_path):
    cases = ["a1", "a2", "a3", "a4"]
    texts = {"a4": "nothing to grade"}  # the planted judge cannot tell: no verdict line
    run_id = fake_run(store, cases, texts=texts)
    with judge_server(PlantedJudge(ticket_truth({"a1", "a2"}))) as fake:
        jf = load_judge(write_judge(tmp_path / "judge.yaml", fake.base_url))
        anyio.run(regrade, store, run_id, jf)
        step = jf.judge
        g = anyio.run(step.grade_step, _step_ctx("nothing to grade"))
    assert not g.passed and g.reason.startswith(COULD_NOT_JUDGE) and g.trust == Trust.noisy
    line = line_of(store, run_id)
    assert line.not_judged == 1 and line.raw.n == 3 and line.raw.k == 2
    assert any("no readable verdict" in w for w in line.warnings)


def _step_ctx(text: str):
    from trialrun.graders.base import StepContext

    d = Decision(kind="message", node="reply", text=text)
    return StepContext(node="reply", decision=d, verdict=None, result=ToolResult(ok=True),
                       task={"id": "t"})


def test_live_and_stored_contexts_are_the_same_request(store, tmp_path):
    """A judge in the scenario and the same judge re-grading the stored run ask the same
    questions: the re-grade is served from the answers the run got."""
    from trialrun.graders.judge import JudgeCache, use_judge_cache

    judge = PlantedJudge(lambda text: "refund" in text.lower())
    with judge_server(judge) as fake:
        with use_judge_cache(JudgeCache(store)):
            summary = run_source(store, retail_with_judges(fake.base_url),
                                 retry_backoff_s=0.0)
        n = fake.requests
        jpath = write_judge(tmp_path / "polite.yaml", fake.base_url, name="polite",
                            rubric="The reply is polite.")
        result = anyio.run(regrade, store, summary.run_id, load_judge(jpath))
    assert result.items == 2 and result.requests == 0 and fake.requests == n


# --- pairwise ------------------------------------------------------------------------------
def _pairs(n: int) -> list[tuple[dict, dict]]:
    out = []
    for i in range(n):
        good_first = unit("pair", i) < 0.5
        a = {"case": f"p{i}", "reply": "quality: good" if good_first else "quality: bad"}
        b = {"case": f"p{i}", "reply": "quality: bad" if good_first else "quality: good"}
        out.append((a, b))
    return out


class _Pairs:
    def __init__(self, judge: PairwiseJudge) -> None:
        self.inner = judge

    async def judge(self, pair):
        return await self.inner.compare(*pair)


def test_pairwise_judging_reports_a_planted_position_bias():
    pairs = _pairs(300)
    with judge_server(PlantedJudge(lambda _: None, position_bias=0.3)) as fake:
        j = PairwiseJudge(PairwiseOptions(model="judge", base_url=fake.base_url,
                                          rubric="the better reply", **FAST), "better")
        results = anyio.run(judge_many, _Pairs(j), pairs)
        assert fake.requests == 600  # both orders
    s = pairwise_summary(results, "better", "a", "b")
    print("planted position bias 0.30; measured", s.position_bias, s.first_position)
    # a biased verdict flips the pair exactly when the better answer was shown second
    assert s.position_bias.lo <= 0.3 <= s.position_bias.hi
    # P(naming the first shown) = 0.3 + 0.7 * 0.5 = 0.65
    assert s.first_position.lo <= 0.65 <= s.first_position.hi
    assert s.ties == s.position_flips and s.judged == 300
    truth_a = sum("good" in a["reply"] for a, _ in pairs)
    assert s.a_wins <= truth_a and s.a_wins + s.b_wins + s.ties == 300


def test_pairwise_command_compares_two_runs_without_bias(store, tmp_path):
    cases = [f"q{i}" for i in range(20)]
    run_a = fake_run(store, cases, texts={c: f"ticket {c} quality: good" for c in cases})
    run_b = fake_run(store, cases, texts={c: f"ticket {c} quality: bad" for c in cases})
    with judge_server(PlantedJudge(lambda _: None)) as fake:
        jpath = write_judge(tmp_path / "pair.yaml", fake.base_url, type="pairwise",
                            rubric="the better reply")
        out = tmp_path / "pair.json"
        r = invoke("pairwise", run_a, run_b, "-g", str(jpath), "--db", store.url, "--json",
                   str(out))
    assert r.exit_code == 0, r.output
    s = json.loads(out.read_text())
    assert (s["a_wins"], s["b_wins"], s["position_flips"]) == (20, 0, 0)
    assert "position-bias rate" in r.output


# --- bad input: one line, file:line ---------------------------------------------------------
def test_a_bad_judge_file_is_one_line_with_its_place(tmp_path):
    bad = tmp_path / "judge.yaml"
    bad.write_text("name: j\nmodel: m\nrubrik: be nice\nsamples: 2\n")
    r = invoke("calibrate", str(bad), str(tmp_path / "none.yaml"))
    assert r.exit_code == 2
    assert f"{bad}:3:1: rubrik: unknown key; did you mean 'rubric'?" in r.output
    assert f"{bad}:4:1: samples: must be odd" in r.output
    assert r.output.index(":3:1:") < r.output.index(":4:1:")  # in line order
    assert "Traceback" not in r.output


def test_a_bad_golden_label_names_its_line(tmp_path):
    with judge_server(PlantedJudge(lambda _: True)) as fake:
        jpath = write_judge(tmp_path / "judge.yaml", fake.base_url)
        gold = tmp_path / "gold.yaml"
        gold.write_text("examples:\n  - context: {decision: {text: hi}}\n    label: pass\n"
                        "  - context: {decision: {text: ho}}\n    label: maybe\n")
        r = invoke("calibrate", str(jpath), str(gold))
        assert r.exit_code == 2
        assert f"{gold}:4: label 'maybe': expected pass or fail" in r.output
        jsonl = tmp_path / "gold.jsonl"
        jsonl.write_text('{"context": "x", "label": "pass"}\n{"context": "y", "lable": 1}\n')
        r = invoke("calibrate", str(jpath), str(jsonl))
        assert r.exit_code == 2 and f"{jsonl}:2:1: lable: " in r.output
        assert fake.requests == 0


def test_outcome_context_is_the_transcript():
    steps = [Step(index=0, node="reply", decision=Decision(kind="message", node="reply",
                                                           text="hello"),
                  result=ToolResult(ok=True, output={"sent": True}))]
    ctx = outcome_context({"id": "t"}, steps, "finished")
    assert ctx == {"task": {"id": "t"}, "end_reason": "finished", "transcript": [
        {"step": 0, "node": "reply", "decision": {"kind": "message", "text": "hello"},
         "result": {"ok": True, "output": {"sent": True}}}]}


def test_endpoint_faults_raise_infra_error_not_a_grade():
    with judge_server(PlantedJudge(lambda _: True)) as fake:
        fake.fail("judge", "500")
        j = LLMJudge(JudgeOptions(model="judge", base_url=fake.base_url, rubric="r",
                                  max_attempts=2, **FAST), "j")
        with pytest.raises(InfraError, match="gave up after 2 attempt"):
            anyio.run(j.judge, {"x": 1})


def test_the_judge_key_is_sent_never_stored(store, tmp_path, monkeypatch):
    key = "sk-judge-5e1f0c3a9b7d4e2f8a6c1b3d5e7f9a0b"
    monkeypatch.setenv("TRIALRUN_JUDGE_KEY", key)
    run_id = fake_run(store, ["k1", "k2"])
    with judge_server(PlantedJudge(ticket_truth({"k1"}))) as fake:
        jpath = write_judge(tmp_path / "judge.yaml", fake.base_url,
                            api_key_env="TRIALRUN_JUDGE_KEY")
        r = invoke("grade", run_id, "-g", str(jpath), "--db", store.url, "--no-progress")
    assert r.exit_code == 0 and set(fake.auth) == {f"Bearer {key}"}
    db = Path(store.url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert key.encode() not in stored and key not in r.output


@pytest.mark.parametrize("answer, verdict", [
    ("Polite and complete.\nVERDICT: PASS", True),
    ("It misses the refund.\n**VERDICT:** FAIL", False),
    ("**Verdict**: pass.", True),
    ("verdict = Fail", False),
    ('```json\n{"reasoning": "fine", "verdict": "PASS"}\n```', True),
    ("VERDICT: PASS ... on reflection, VERDICT: FAIL", False),  # the last one counts
    ("I would pass this.", None),
    ('{"verdict": "maybe"}', None),
])
def test_answers_are_read_in_common_formats(answer, verdict):
    j = LLMJudge(JudgeOptions(model="m", rubric="r"), "j")
    got = j.read(answer)
    assert (got[0] if got else None) == verdict
