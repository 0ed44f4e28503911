"""How far to trust an LLM judge, and the rates it gives corrected for its errors.

- `calibrate`: the judge over a golden set (people's labels): the confusion matrix,
  agreement, Cohen's κ, sensitivity and specificity with CIs, the examples it got wrong, and
  its self-agreement; stored with the judge's fingerprint (`trialrun calibrate`).
- `regrade`: a judge over a stored run's steps or outcomes; the grades stored apart from the
  run's own (`trialrun grade`).
- `judge_report`: for the report, each judge's raw pass rate in a run beside the rate
  corrected for its errors: Rogan–Gladen from its calibration (if the judge is unchanged
  since), prediction-powered inference where people labelled some of the run's items, and
  which one to believe and why; its self-agreement, with a warning when low.

Definitions follow ANALYSIS.md section 5 (`trialrun.analysis.stats`); each quantity's one
name and meaning is in `trialrun.analysis.summary.LABELS`/`MEANINGS`. Rogan–Gladen's SE in
ANALYSIS.md treats Se and Sp as known; here the CI also counts their own sampling error on the
golden set (delta method), without which a few hundred golden examples give CIs that cover
the truth well under 95% of the time (tests/test_judge.py measures the coverage).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from trialrun.analysis.stats import (
    Z95,
    bootstrap_ci,
    cohens_kappa,
    krippendorff_alpha_nominal,
    ppi_mean,
    rogan_gladen,
)
from trialrun.analysis.summary import (
    CorrectedRate,
    JudgeCalibrationInfo,
    JudgeLine,
    JudgeReport,
    Proportion,
)
from trialrun.errors import InfraError, TrialrunError
from trialrun.graders.judge import (
    COULD_NOT_JUDGE,
    JudgeFile,
    JudgeOptions,
    JudgeResult,
    fingerprint,
    fingerprint_parts,
    judge_many,
    parse_label,
)

__all__ = ["Calibration", "RegradeResult", "calibrate", "confusion", "judge_report",
           "kappa_interval", "ppi_rate", "regrade", "rogan_gladen_rate", "self_agreement"]

SELF_AGREEMENT_WARN = 0.9  # below this share of agreeing sample pairs, the report warns
PART_WORDS = {"model": "the model", "prompt": "the rubric or prompt",
              "examples": "the examples", "sampling": "the sampling (samples, temperature, "
              "seed)"}


class JudgeInputError(TrialrunError):
    """A golden set that does not fit the judge (a label off its scale): one line each."""


# --- the statistics ------------------------------------------------------------------------
def confusion(judge: list[bool], human: list[bool]) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN): rows judge pass/fail, columns person pass/fail."""
    j = np.asarray(judge, dtype=bool)
    h = np.asarray(human, dtype=bool)
    return (int((j & h).sum()), int((j & ~h).sum()), int((~j & h).sum()),
            int((~j & ~h).sum()))


def _kappa_of_sums(s: np.ndarray) -> np.ndarray:
    tp, fp, fn, tn = (s[..., i] for i in range(4))
    n = tp + fp + fn + tn
    with np.errstate(invalid="ignore", divide="ignore"):
        po = (tp + tn) / n
        pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
        return np.where(pe < 1, (po - pe) / (1 - pe), np.nan)


def kappa_interval(tp: int, fp: int, fn: int, tn: int, n_boot: int = 2000, seed: int = 0
                   ) -> tuple[float | None, float | None, float | None]:
    """Cohen's κ of a judge-by-person table and its 95% percentile bootstrap CI over
    examples; (None, None, None) when κ is undefined (every verdict and label alike)."""
    n = tp + fp + fn + tn
    if n == 0:
        return None, None, None
    k = cohens_kappa([[tp, fp], [fn, tn]])
    rows = np.repeat(np.eye(4), [tp, fp, fn, tn], axis=0)
    ci = bootstrap_ci(_kappa_of_sums, rows, n_boot=n_boot, seed=seed, ignore_nan=True)
    lo = None if math.isnan(ci.lo) else ci.lo
    hi = None if math.isnan(ci.hi) else ci.hi
    return k, lo, hi


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def rogan_gladen_rate(k: int, n: int, tp: int, fp: int, fn: int, tn: int
                      ) -> CorrectedRate | str:
    """The judge's pass rate k/n corrected with the Se, Sp of its calibration table
    (`stats.rogan_gladen`); the SE adds the calibration's own sampling error (delta method):
    Var = [p(1−p)/n + π²·Se(1−Se)/n₊ + (1−π)²·Sp(1−Sp)/n₋] / (Se + Sp − 1)².
    A string says why there is no correction."""
    n_pos, n_neg = tp + fn, tn + fp
    if n == 0:
        return "no judged items"
    if not n_pos or not n_neg:
        return "the golden set needs examples people passed and examples they failed"
    se, sp = tp / n_pos, tn / n_neg
    j = se + sp - 1
    if j <= 0:
        return (f"the judge is no better than chance on its golden set (Se {se:.2f} + Sp "
                f"{sp:.2f} ≤ 1), so nothing can correct its rate")
    est = rogan_gladen(k / n, se, sp, n)
    pi = est.value
    var = est.se ** 2 + (pi * pi * se * (1 - se) / n_pos
                         + (1 - pi) ** 2 * sp * (1 - sp) / n_neg) / (j * j)
    half = Z95 * math.sqrt(var)
    return CorrectedRate(method="rogan_gladen", estimate=pi, se=math.sqrt(var),
                         lo=_clip(pi - half), hi=_clip(pi + half), n=n)


def ppi_rate(judge_unlabelled: list[float], judge_labelled: list[float],
             human_labelled: list[float]) -> CorrectedRate | str:
    """Prediction-powered pass rate (`stats.ppi_mean`): the judge's mean on the unlabelled
    items plus the mean of (person − judge) on the labelled ones; 95% CI ± 1.96 SE."""
    if len(judge_labelled) < 2:
        return "fewer than 2 of the run's judged items are labelled"
    if len(judge_unlabelled) < 2:
        return "fewer than 2 of the run's judged items are unlabelled"
    est = ppi_mean(judge_unlabelled, judge_labelled, human_labelled)
    half = Z95 * est.se
    return CorrectedRate(method="ppi", estimate=est.value, se=est.se, lo=_clip(est.value - half),
                         hi=_clip(est.value + half),
                         n=len(judge_unlabelled) + len(judge_labelled),
                         n_labelled=len(judge_labelled))


def self_agreement(votes: list[int], samples: int) -> tuple[float | None, float | None]:
    """(mean pairwise agreement, Krippendorff's α) of `samples` verdicts per item, from the
    number that passed on each item; (None, None) with fewer than 2 samples."""
    if samples < 2 or not votes:
        return None, None
    pairs = math.comb(samples, 2)
    agree = [(math.comb(v, 2) + math.comb(samples - v, 2)) / pairs for v in votes]
    alpha = krippendorff_alpha_nominal([[1] * v + [0] * (samples - v) for v in votes])
    return float(np.mean(agree)), alpha


def _self_warning(agreement: float | None, alpha: float | None) -> str | None:
    if agreement is None or agreement >= SELF_AGREEMENT_WARN:
        return None
    return (f"low judge self-agreement: two samples on the same item agree only "
            f"{100 * agreement:.0f}% of the time (Krippendorff's α {alpha:.2f}); single "
            "verdicts are unreliable — sharpen the rubric, add worked examples, lower the "
            "temperature or take the majority of more samples")


# --- calibration ---------------------------------------------------------------------------
class WrongExample(BaseModel):
    where: str  # file:line
    id: str | None = None
    human: str
    judge: str
    explanation: str = ""  # the person's
    reasoning: str = ""  # the judge's


class Calibration(BaseModel):
    judge: str
    fingerprint: str
    parts: dict[str, str]
    model: str
    golden: str
    golden_digest: str
    examples: int  # labelled examples the judge judged
    unlabelled: int = 0
    not_judged: list[str] = []  # where: no readable verdict
    tp: int
    fp: int
    fn: int
    tn: int
    agreement: Proportion
    kappa: float | None
    kappa_lo: float | None = None
    kappa_hi: float | None = None
    sensitivity: Proportion
    specificity: Proportion
    wrong: list[WrongExample] = []
    samples: int = 1
    self_agreement: float | None = None
    self_alpha: float | None = None
    warnings: list[str] = []
    run_items: int = 0  # labelled examples that name an item of a stored run (for PPI)


def _word(passed: bool, score: int | None = None) -> str:
    return f"{score} ({'pass' if passed else 'fail'})" if score is not None else \
        ("pass" if passed else "fail")


async def calibrate(jf: JudgeFile, golden: Any, concurrency: int = 8
                    ) -> tuple[Calibration, list[tuple[str, bool]]]:
    """Run the judge over a golden set's labelled examples. Returns the calibration and the
    labels of examples that name a run's item. A label off the judge's scale raises
    JudgeInputError (every one, file:line); an endpoint that stays down, InfraError (the
    answers already given are cached: running again resumes)."""
    from trialrun.graders.judge import LLMJudge

    judge = jf.judge
    if not isinstance(judge, LLMJudge):
        raise JudgeInputError(f"{jf.path}: a {jf.type} judge is not calibrated on pass/fail "
                              "labels; calibrate an llm_judge")
    o = judge.options
    picked, human, scores, problems = [], [], [], []
    unlabelled = 0
    for i, ex in enumerate(golden.examples):
        if ex.label is None:
            unlabelled += 1
            continue
        try:
            passed, score = parse_label(ex.label, o.scale)
        except ValueError as e:
            problems.append(f"{golden.where(i)}: {e}")
            continue
        picked.append(i)
        human.append(passed)
        scores.append(score)
    if problems:
        raise JudgeInputError("\n".join(problems))
    if not picked:
        raise JudgeInputError(f"{golden.path}: no labelled example (give each a label: pass "
                              "or fail)")
    results = await judge_many(judge, [golden.examples[i].context for i in picked],
                               concurrency)
    failed = [r for r in results if isinstance(r, InfraError)]
    if failed:
        raise InfraError(f"{len(failed)} of {len(results)} golden example(s) not judged: "
                         f"{failed[0]}")
    ok = [(i, h, s, r) for i, h, s, r in zip(picked, human, scores, results, strict=True)
          if isinstance(r, JudgeResult) and r.judged]
    not_judged = [golden.where(i) for i, r in zip(picked, results, strict=True)
                  if not (isinstance(r, JudgeResult) and r.judged)]
    tp, fp, fn, tn = confusion([r.passed for *_, r in ok], [h for _, h, _, _ in ok])
    k, lo, hi = kappa_interval(tp, fp, fn, tn)
    wrong = [WrongExample(where=golden.where(i), id=golden.examples[i].id, human=_word(h, s),
                          judge=_word(r.passed, round(np.mean(r.scores)) if r.scores else None),
                          explanation=golden.examples[i].explanation,
                          reasoning=r.reasoning[:1000])
             for i, h, s, r in ok if r.passed != h]
    agree, alpha = self_agreement([r.votes for *_, r in ok if r.readable == o.samples],
                                  o.samples)
    warnings = []
    if golden.judge and golden.judge != jf.name:
        warnings.append(f"the golden set says its labels are for judge {golden.judge!r}, "
                        f"not {jf.name!r}")
    if not_judged:
        warnings.append(f"{len(not_judged)} example(s) got no readable verdict and are left "
                        "out: " + ", ".join(not_judged[:5]))
    w = _self_warning(agree, alpha)
    if w:
        warnings.append(w)
    if tp + fn == 0 or tn + fp == 0:
        warnings.append("the golden set needs examples people passed and examples they "
                        "failed: sensitivity or specificity is unknown")
    labels = [(golden.examples[i].id, h) for i, h in zip(picked, human, strict=True)
              if golden.examples[i].id and ":" in golden.examples[i].id]
    cal = Calibration(
        judge=jf.name, fingerprint=judge.fingerprint, parts=fingerprint_parts(o), model=o.model,
        golden=golden.path, golden_digest=golden.digest, examples=len(ok),
        unlabelled=unlabelled, not_judged=not_judged, tp=tp, fp=fp, fn=fn, tn=tn,
        agreement=Proportion.of(tp + tn, len(ok)), kappa=k, kappa_lo=lo, kappa_hi=hi,
        sensitivity=Proportion.of(tp, tp + fn), specificity=Proportion.of(tn, tn + fp),
        wrong=wrong, samples=o.samples, self_agreement=agree, self_alpha=alpha,
        warnings=warnings, run_items=len(labels))
    return cal, labels


def save_calibration(store: Any, cal: Calibration, labels: list[tuple[str, bool]]) -> int:
    return store.save_calibration(cal.judge, cal.fingerprint, cal.model_dump_json(), labels,
                                  cal.golden)


# --- re-grading a stored run ---------------------------------------------------------------
@dataclass
class RegradeResult:
    items: int = 0
    judged: int = 0
    passed: int = 0
    not_judged: int = 0
    failed: list[str] = field(default_factory=list)  # infrastructure errors
    requests: int = 0
    cached: int = 0
    stored: bool = False


async def regrade(store: Any, run_id: str, jf: JudgeFile, concurrency: int = 8,
                  on_done: Any = None) -> RegradeResult:
    """Judge a stored run's steps at the judge file's nodes (or its outcomes) and store the
    grades, replacing that judge's earlier re-grades of the run. All or nothing: when the
    endpoint fails some items, nothing is stored (the answers given are cached, so running
    again asks only for the rest)."""
    from trialrun.graders.golden import run_items
    from trialrun.graders.judge import JudgeCache, use_judge_cache

    judge = jf.judge
    items = list(run_items(store, run_id, set(jf.nodes) if jf.nodes else None))
    out = RegradeResult(items=len(items))
    before_req, before_hit = judge.client.requests, judge.client.cached
    with use_judge_cache(JudgeCache(store)):
        results = await judge_many(judge, [x.context for x in items], concurrency, on_done)
    out.requests = judge.client.requests - before_req
    out.cached = judge.client.cached - before_hit
    rows = []
    for x, r in zip(items, results, strict=True):
        if isinstance(r, InfraError):
            out.failed.append(f"{x.item}: {r}")
            continue
        out.judged += r.judged
        out.passed += r.passed
        out.not_judged += not r.judged
        rows.append({"episode_id": x.episode_id, "step_idx": x.step_idx, "node": x.node,
                     "passed": r.passed, "judged": r.judged, "score": r.score,
                     "votes": r.votes, "samples": r.readable, "reason": r.reason()})
    if not out.failed:
        store.save_judge_grades(store.get_run(run_id).id, jf.name, judge.fingerprint,
                                jf.spec(), rows)
        out.stored = True
    return out


# --- the report's judge section ------------------------------------------------------------
@dataclass
class _Item:
    passed: bool
    judged: bool
    votes: int | None  # samples that passed, when known
    samples: int | None


@dataclass
class _Judge:
    label: str
    scope: str
    source: str
    nodes: list[str] = field(default_factory=list)
    options: JudgeOptions | None = None
    fingerprint: str | None = None
    parts: dict[str, str] | None = None
    items: dict[str, _Item] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _judge_types() -> set[str]:
    return {"llm_judge", "trialrun.graders.judge:LLMJudge", "trialrun.graders.judge.LLMJudge"}


def _options(raw: dict[str, Any]) -> JudgeOptions | None:
    try:
        return JudgeOptions.model_validate(raw)
    except ValueError:
        return None


def _declare(judges: dict[str, _Judge], label: str, scope: str, source: str,
             raw: dict[str, Any], nodes: list[str], fp: str | None = None) -> None:
    opts = _options(raw)
    fp = fp or (fingerprint(opts) if opts is not None else None)
    j = judges.get(label)
    if j is None or j.source != source:
        j = judges[label] = _Judge(label, scope, source, options=opts, fingerprint=fp,
                                   parts=fingerprint_parts(opts) if opts else None)
    elif fp != j.fingerprint and not j.warnings:
        j.warnings.append(f"judge {label!r} is not the same in every scenario of the run; "
                          "its calibration is matched to the first")
    j.nodes.extend(n for n in nodes if n not in j.nodes)


def _run_judges(store: Any, run_id: str) -> tuple[dict[str, _Judge], int]:
    """Every judge of a run with its items, and the episodes whose success rests on noisy
    outcome grades alone. Graded as the run ran (the scenarios' llm_judge graders, their
    grades in the steps) and re-graded (`trialrun grade`, which wins for the same label)."""
    import yaml

    from trialrun.graders.golden import item_id

    judges: dict[str, _Judge] = {}
    for text in store.scenario_sources(run_id).values():
        data = yaml.safe_load(text)
        data = data if isinstance(data, dict) else {}
        for g in data.get("graders") or []:
            if isinstance(g, dict) and g.get("type") in _judge_types():
                raw = {k: v for k, v in g.items() if k not in ("type", "name")}
                _declare(judges, g.get("name") or g["type"], "outcome", "run", raw, [])
        for node, spec in (data.get("nodes") or {}).items():
            for g in (spec or {}).get("graders") or []:
                if isinstance(g, dict) and g.get("type") in _judge_types():
                    raw = {k: v for k, v in g.items() if k not in ("type", "name")}
                    _declare(judges, g.get("name") or g["type"], "node", "run", raw, [node])
    # Only the rows that hold a judge's grade, filtered in SQL: most rows never load.
    eps, steps = store.noisy_grade_columns(run_id)
    judged_success = 0

    def add(label: str, item: str, g: dict[str, Any], scope: str, node: str | None) -> None:
        j = judges.get(label)
        if j is None:  # a noisy grader that is not an llm_judge: raw rates only
            j = judges[label] = _Judge(label, scope, "run")
        if j.source != "run":
            return
        if node and node not in j.nodes:
            j.nodes.append(node)
        k = j.options.samples if j.options else None
        score = float(g.get("score", 0.0))
        votes = round(score * k) if k and abs(score * k - round(score * k)) < 1e-6 else None
        j.items[item] = _Item(bool(g.get("passed")),
                              not str(g.get("reason", "")).startswith(COULD_NOT_JUDGE),
                              votes, k if votes is not None else None)

    for eid, outcome in zip(eps["id"], eps["outcome_grades"], strict=True):
        grades = json.loads(outcome or "[]")
        noisy = [g for g in grades if g.get("trust") == "noisy"]
        if noisy and len(noisy) == len(grades):
            judged_success += 1
        for g in noisy:
            add(g["grader"], item_id(eid, None), g, "outcome", None)
    for eid, idx, node, grades in zip(steps["episode_id"], steps["idx"], steps["node"],
                                      steps["grades"], strict=True):
        for g in json.loads(grades):
            if g.get("trust") == "noisy":
                add(g["grader"], item_id(eid, idx), g, "node", node)

    for row in store.judge_gradings(run_id):
        spec = json.loads(row.spec)
        nodes = spec.get("node") or []
        raw = {k: v for k, v in spec.items() if k not in ("type", "name", "node")}
        judges.pop(row.grader, None)
        _declare(judges, row.grader, "node" if nodes else "outcome", "regrade", raw,
                 list(nodes), row.fingerprint)
    regrades = store.judge_grades(run_id)
    if regrades:  # which re-graded episodes count (not infrastructure errors)
        e = store.episode_columns(run_id, ["id", "end_reason"])
        scored = {i for i, r in zip(e["id"], e["end_reason"], strict=True) if r != "error"}
    for g in regrades:
        j = judges.get(g.grader)
        if j is None or j.source != "regrade" or g.episode_id not in scored:
            continue
        j.items[item_id(g.episode_id, g.step_idx)] = _Item(
            g.passed, g.judged, g.votes if g.samples else None, g.samples or None)
    return judges, judged_success


def _calibration_info(row: Any) -> tuple[Calibration, JudgeCalibrationInfo]:
    cal = Calibration.model_validate_json(row.result)
    return cal, JudgeCalibrationInfo(
        id=row.id, created_at=row.created_at, golden=cal.golden, examples=cal.examples,
        agreement=cal.agreement, kappa=cal.kappa, kappa_lo=cal.kappa_lo, kappa_hi=cal.kappa_hi,
        sensitivity=cal.sensitivity, specificity=cal.specificity, fingerprint=cal.fingerprint)


def _line(store: Any, run_id: str, j: _Judge) -> JudgeLine:
    items = j.items
    judged = {k: v for k, v in items.items() if v.judged}
    k_pass = sum(v.passed for v in judged.values())
    line = JudgeLine(grader=j.label, scope=j.scope, nodes=sorted(j.nodes), source=j.source,
                     model=j.options.model if j.options else None, fingerprint=j.fingerprint,
                     samples=j.options.samples if j.options else 1,
                     not_judged=len(items) - len(judged),
                     raw=Proportion.of(k_pass, len(judged)), warnings=list(j.warnings))
    # calibration: the same fingerprint, else the judge's own name (then it is stale)
    cal = info = None
    rg_reason = "the judge is not calibrated"
    if j.fingerprint:
        rows = store.calibrations(fingerprint=j.fingerprint)
        if rows:
            cal, info = _calibration_info(rows[0])
        else:
            named = store.calibrations(judge=j.label)
            if named:
                old, old_info = _calibration_info(named[0])
                changed = [PART_WORDS[p] for p in PART_WORDS
                           if (j.parts or {}).get(p) != old.parts.get(p)]
                line.calibration_stale = (
                    f"judge {j.label!r} changed since its calibration on {old_info.created_at} "
                    f"({', '.join(changed) or 'its fingerprint'} changed): that calibration no "
                    "longer applies; recalibrate it: trialrun calibrate JUDGE GOLDEN")
                line.warnings.append(line.calibration_stale)
                rg_reason = "the judge changed since its calibration"
    line.calibration = info
    if cal is not None:
        rg = rogan_gladen_rate(k_pass, len(judged), cal.tp, cal.fp, cal.fn, cal.tn)
        if isinstance(rg, CorrectedRate):
            line.rogan_gladen = rg
            if not 0 <= rg.estimate <= 1:
                line.warnings.append(
                    f"the Rogan–Gladen estimate {rg.estimate:.3f} lies outside [0, 1]: the "
                    "judge's Se and Sp on this run differ from its golden set's")
        else:
            rg_reason = rg
    # PPI: people's labels of this run's items, for this judge's criterion
    labels = store.golden_labels(j.label, run_id)
    lab = [k for k in judged if k in labels]
    if lab:
        human = [float(labels[k]) for k in lab]
        line.humans_only = Proportion.of(int(sum(human)), len(human))
        unl = [float(v.passed) for k, v in judged.items() if k not in labels]
        ppi = ppi_rate(unl, [float(judged[k].passed) for k in lab], human)
        if isinstance(ppi, CorrectedRate):
            line.ppi = ppi
    # which to believe
    if line.ppi is not None:
        line.believe = "ppi"
        line.why = (f"{line.ppi.n_labelled} of this run's judged items carry people's labels: "
                    "PPI corrects the judge with them directly, assuming nothing about how it "
                    "errs here (valid if they are a random sample of the run's items, as "
                    "`trialrun export golden --sample` draws)")
    elif line.rogan_gladen is not None:
        c = line.calibration
        line.believe = "rogan_gladen"
        line.why = (f"the judge's calibration on {c.examples} golden examples (Se "
                    f"{100 * c.sensitivity.rate:.0f}%, Sp {100 * c.specificity.rate:.0f}%) "
                    "removes the raw rate's bias, assuming the judge errs on this run as on "
                    "the golden set; label a random sample of this run (`trialrun export "
                    "golden --sample`) to check it with PPI")
    elif line.calibration_stale or (cal is not None):
        line.believe = "none"
        line.why = (f"{rg_reason}; the raw rate is biased by the judge's errors on this run, "
                    "by an amount nothing here measures")
    else:
        line.believe = "raw"
        line.why = ("only the raw rate exists: it carries the judge's errors uncorrected; "
                    "calibrate the judge on a golden set (`trialrun calibrate JUDGE GOLDEN`) "
                    "to correct it")
    # the judge's reliability: agreement among its samples on the same item
    known = [v for v in judged.values() if v.votes is not None and v.samples == line.samples]
    line.self_agreement, line.self_alpha = self_agreement([v.votes for v in known],
                                                          line.samples)
    w = _self_warning(line.self_agreement, line.self_alpha)
    if w:
        line.warnings.append(w)
    if line.not_judged:
        line.warnings.append(f"{line.not_judged} item(s) got no readable verdict "
                             f"(reasons start with {COULD_NOT_JUDGE!r}): counted neither as "
                             "a pass nor a fail")
    return line


def judge_report(store: Any, run_id: str) -> JudgeReport | None:
    """The judge section of a run's report (None when no noisy grade is in the run)."""
    run_id = store.get_run(run_id).id
    judges, judged_success = _run_judges(store, run_id)
    judges = {k: j for k, j in judges.items() if j.items}
    if not judges:
        return None
    return JudgeReport(lines=[_line(store, run_id, j) for _, j in sorted(judges.items())],
                       judged_success=judged_success)


def attach_judges(summary: Any, store: Any, run_id: str) -> Any:
    """Fill a RunSummary's `judges` from the store (terminal, JSON and HTML render it)."""
    summary.judges = judge_report(store, run_id)
    return summary
