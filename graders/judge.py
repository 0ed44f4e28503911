"""LLM judges: a language model grades what no deterministic check can (was the reply polite
and complete, was escalating reasonable), with a rubric, a scale and worked examples.

    graders:                                 # outcome judge (or under nodes.X.graders)
      - type: llm_judge
        name: polite_reply
        model: gpt-4o-mini
        base_url: http://127.0.0.1:8000/v1   # else $OPENAI_BASE_URL, else api.openai.com
        api_key_env: JUDGE_KEY               # else $OPENAI_API_KEY; never stored
        rubric: The reply answers the customer's question, is polite, and promises nothing
          the policy forbids.
        scale: binary                        # or {max: 5, pass_at: 4, anchors: {1: ..., 5: ...}}
        examples:                            # in-context examples, each with its explanation
          - {context: {...}, label: fail, explanation: promises a refund outside the window}
        samples: 3                           # self-consistency: the majority of 3 answers

What the judge sees is a *context*: for a decision, the node, the task, the decision and the
tool's result (`step_context`); for an outcome, the task, the transcript of the episode and
how it ended (`outcome_context`). Contexts are JSON data rendered as YAML into one prompt: the
rubric, the scale, the examples (context, verdict, why), then `# To grade` and the context to
grade, and the answer format (a last line `VERDICT: PASS|FAIL`, or `SCORE: n`). A golden set
(`trialrun.graders.golden`) holds contexts of the same shape with a person's labels.

Grades are `noisy`. `Grade.passed` is the majority verdict of the `samples` answers (an odd
number, so a majority exists); `Grade.score` is the share of answers that passed; the reason
holds the verdict, the votes and the judge's reasoning. A judge that cannot judge never
passes: an endpoint that stays down after the client's retries raises `InfraError` (in a run,
the episode is an infrastructure error, retried and never scored); answers with no readable
verdict give a failed grade whose reason starts with "could not judge", which the report
counts apart (`is_unjudged`), never as the judge's pass or fail.

Every request goes through a cache keyed by the normalised request (`request_key`: model,
messages, sampling params; sample i is sent with seed `seed + i`, so each sample has its own
key): the tape mechanism of the agents (`trialrun.agents.tape`) with a `JudgeCache` as the
tape. With the store-backed cache (`JudgeCache(store)`, installed by `use_judge_cache`),
re-grading with the same judge makes no request and gives identical grades, and a changed
rubric or model re-asks exactly the requests it changes.

`fingerprint` identifies the judge for calibration: its model, its prompt (rubric, scale,
system prompt, what it is shown), its examples and its sampling. A calibration applies to
the judge with the same fingerprint only (`trialrun.calibration`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trialrun.agents.base import AgentError
from trialrun.agents.model_client import Conversation, ModelClient, Prices, canonical
from trialrun.agents.tape import use_tape
from trialrun.errors import InfraError
from trialrun.graders.base import Grader, GraderOptions, OutcomeContext, StepContext
from trialrun.registry import register
from trialrun.trajectory import Decision, Grade, ModelCall, Step, ToolResult, Trust

__all__ = [
    "COULD_NOT_JUDGE", "TO_GRADE", "JudgeCache", "JudgeExample", "JudgeOptions",
    "JudgeResult", "LLMJudge", "ScoreScale", "fingerprint_parts", "is_unjudged",
    "outcome_context", "parse_label", "render_context", "step_context", "use_judge_cache",
]

PROMPT_VERSION = "1"  # in the fingerprint: a new prompt template re-asks and recalibrates
TO_GRADE = "# To grade"  # the heading before the context being graded
COULD_NOT_JUDGE = "could not judge"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_SYSTEM = (
    "You are a careful, impartial evaluator of an AI agent's work. Grade only against the "
    "rubric, the way the graded examples do. Reason briefly, then give your verdict in the "
    "exact format asked for on the last line.")


def is_unjudged(grade: Grade) -> bool:
    """A judge grade that is no verdict (no readable answer): counted apart, never as a pass
    or a fail of the agent."""
    return grade.trust == Trust.noisy and grade.reason.startswith(COULD_NOT_JUDGE)


# --- options -------------------------------------------------------------------------------
class ScoreScale(BaseModel):
    """A score from `min` to `max` (1–5 by default), each score described by an anchor; a
    score of at least `pass_at` passes."""

    model_config = ConfigDict(extra="forbid")

    min: int = 1
    max: int = 5
    anchors: dict[int, str] = Field(description="what each score means, e.g. {1: 'rude or "
                                    "wrong', 5: 'complete and courteous'}")
    pass_at: int = Field(description="the lowest passing score")

    @model_validator(mode="after")
    def _coherent(self) -> ScoreScale:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        outside = [k for k in self.anchors if not self.min <= k <= self.max]
        if outside:
            raise ValueError(f"anchors: score {outside[0]} is outside {self.min}..{self.max}")
        if not self.min < self.pass_at <= self.max:
            raise ValueError(f"pass_at must lie in {self.min + 1}..{self.max}")
        return self


Scale = Literal["binary"] | ScoreScale
Label = bool | int | str

_PASS_WORDS = {"pass": True, "passed": True, "yes": True, "true": True, "good": True,
               "fail": False, "failed": False, "no": False, "false": False, "bad": False}


def parse_label(value: Any, scale: Scale) -> tuple[bool, int | None]:
    """A person's or an example's label as (passed, score): `pass`/`fail` (also yes/no,
    true/false) on any scale, or a score on a 1–5 scale. ValueError says what is expected."""
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str) and value.strip().lower() in _PASS_WORDS:
        return _PASS_WORDS[value.strip().lower()], None
    if isinstance(scale, ScoreScale):
        try:
            score = int(str(value).strip())
        except ValueError:
            score = None
        if score is not None and scale.min <= score <= scale.max:
            return score >= scale.pass_at, score
        raise ValueError(f"label {value!r}: expected pass, fail or a score "
                         f"{scale.min}..{scale.max}")
    if value in (0, 1):
        return bool(value), None
    raise ValueError(f"label {value!r}: expected pass or fail")


class JudgeExample(BaseModel):
    """An in-context example: a context like the ones graded, its label and why."""

    model_config = ConfigDict(extra="forbid")

    context: dict[str, Any] | str
    label: Label
    explanation: str = Field("", description="why the label is right: the judge learns "
                             "most from this")


class EndpointOptions(GraderOptions):
    """The judge model and how to reach it (shared by single and pairwise judges)."""

    model: str = Field(description="the judge model (part of its fingerprint)")
    base_url: str | None = Field(None, description="chat-completions base URL (…/v1); "
                                 "default $OPENAI_BASE_URL, else https://api.openai.com/v1")
    api_key_env: str | None = Field(None, description="environment variable holding the key "
                                    "(default OPENAI_API_KEY); the key is never stored")
    rubric: str = Field(min_length=1, description="what a good answer is, in words")
    system_prompt: str | None = None
    samples: int = Field(1, ge=1, description="answers per item (an odd number); the "
                         "majority is the verdict, their agreement the judge's reliability")
    temperature: float | None = Field(None, ge=0, le=2, description="default 0 with one "
                                      "sample, 1 with several")
    max_tokens: int | None = Field(None, ge=1)
    seed: int = Field(0, description="sample i is asked with seed + i")
    show: list[str] | None = Field(None, description="the parts of the context the judge "
                                   "sees (default: all: node, task, decision, result; or "
                                   "task, transcript, end_reason)")
    task_fields: list[str] | None = Field(None, description="the task's fields the judge "
                                          "sees (default: all)")
    max_chars: int = Field(2000, ge=50, description="longer texts in the context are cut")
    timeout_s: float = Field(60.0, gt=0, description="per HTTP attempt")
    max_attempts: int = Field(5, ge=1, description="HTTP attempts per request")
    backoff_s: float = Field(0.5, ge=0)
    max_backoff_s: float = Field(8.0, ge=0)
    max_retry_after_s: float = Field(60.0, ge=0)
    concurrency: int = Field(8, ge=1, description="requests in flight to the endpoint")
    requests_per_second: float | None = Field(None, gt=0)
    prices: Prices = Field(default_factory=Prices)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v

    @field_validator("samples")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"must be odd, so that a majority exists (got {v})")
        return v

    def sampling(self, i: int) -> dict[str, Any]:
        """The params of sample i (in the request and its cache key)."""
        t = self.temperature if self.temperature is not None else (
            0.0 if self.samples == 1 else 1.0)
        params: dict[str, Any] = {"temperature": t, "seed": self.seed + i}
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        return params


class JudgeOptions(EndpointOptions):
    scale: Scale = Field("binary", description="binary (pass/fail) or a score scale with "
                         "anchors and pass_at")
    examples: list[JudgeExample] = Field(default_factory=list)

    @model_validator(mode="after")
    def _labels(self) -> JudgeOptions:
        for i, ex in enumerate(self.examples):
            try:
                parse_label(ex.label, self.scale)
            except ValueError as e:
                raise ValueError(f"examples[{i}].label: {e}") from None
        return self


# --- what the judge sees -------------------------------------------------------------------
def _jsonable(x: Any) -> Any:
    """As the store would give it back: a live context and a stored one render the same."""
    return json.loads(json.dumps(x, default=str))


def _decision(d: Decision) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": d.kind}
    if d.tool:
        out["tool"] = d.tool
    if d.args:
        out["args"] = d.args
    if d.text:
        out["text"] = d.text
    return out


def _result(r: ToolResult) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": r.ok}
    if r.output is not None:
        out["output"] = r.output
    if r.error:
        out["error"] = r.error
    return out


def step_context(node: str, decision: Decision, result: ToolResult | None,
                 task: dict[str, Any]) -> dict[str, Any]:
    """What a node judge sees of one decision (the same live and from the store)."""
    ctx: dict[str, Any] = {"node": node, "task": task, "decision": _decision(decision)}
    if result is not None:
        ctx["result"] = _result(result)
    return _jsonable(ctx)


def outcome_context(task: dict[str, Any], steps: Sequence[Step], end_reason: str
                    ) -> dict[str, Any]:
    """What an outcome judge sees: the task, every step (decision and result) and the end."""
    transcript = []
    for st in steps:
        entry: dict[str, Any] = {"step": st.index, "node": st.node,
                                 "decision": _decision(st.decision)}
        if st.result is not None:
            entry["result"] = _result(st.result)
        transcript.append(entry)
    return _jsonable({"task": task, "transcript": transcript, "end_reason": end_reason})


def _cut(x: Any, limit: int) -> Any:
    if isinstance(x, str):
        return x if len(x) <= limit else f"{x[:limit]}… ({len(x) - limit} more characters)"
    if isinstance(x, dict):
        return {k: _cut(v, limit) for k, v in x.items()}
    if isinstance(x, list):
        return [_cut(v, limit) for v in x]
    return x


def render_context(context: dict[str, Any] | str, show: Sequence[str] | None = None,
                   task_fields: Sequence[str] | None = None, max_chars: int = 2000) -> str:
    """A context as the judge reads it: YAML of the parts shown, long texts cut."""
    if isinstance(context, str):
        return _cut(context, max_chars * 4).strip()
    data = {k: v for k, v in context.items() if show is None or k in show}
    task = data.get("task")
    if task_fields is not None and isinstance(task, dict):
        data["task"] = {k: task[k] for k in task_fields if k in task}
    data = _cut(_jsonable(data), max_chars)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).rstrip()


# --- the cache: a tape the judge's model clients read and write ---------------------------
class JudgeCache:
    """Judge responses by request key; a tape (`trialrun.agents.tape`) that goes live on a
    miss. With a store, responses persist (`judge_call` table) across processes; without,
    they live as long as the object."""

    live_on_miss = True

    def __init__(self, store: Any = None) -> None:
        self.store = store
        self._memory: dict[str, ModelCall] = {}
        self.hits = 0
        self.misses = 0

    def lookup(self, key: str, episode: str | None = None) -> ModelCall | None:
        call = self._memory.get(key)
        if call is None and self.store is not None:
            call = self.store.get_judge_call(key)
            if call is not None:
                self._memory[key] = call
        if call is None:
            self.misses += 1
        else:
            self.hits += 1
        return call

    def add(self, call: ModelCall, episode: str | None = None) -> None:
        self._memory[call.key] = call
        if self.store is not None:
            self.store.save_judge_call(call)


current_judge_cache: ContextVar[JudgeCache | None] = ContextVar("trialrun_judge_cache",
                                                                default=None)


@contextmanager
def use_judge_cache(cache: JudgeCache | None) -> Iterator[JudgeCache | None]:
    """Install `cache` for the judges of this context (and the tasks it starts)."""
    token = current_judge_cache.set(cache)
    try:
        yield cache
    finally:
        current_judge_cache.reset(token)


def _content(data: dict[str, Any]) -> str:
    msg = data["choices"][0]["message"]
    content = msg.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


class JudgeClient:
    """Sends one judge request through the cache (see the module docstring); counts the HTTP
    requests it made and the answers the cache served."""

    def __init__(self, options: EndpointOptions, label: str) -> None:
        self.options = options
        self.label = label
        self.memory = JudgeCache()  # used when no cache is installed
        self.requests = 0
        self.cached = 0

    async def ask(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        o = self.options
        conv = Conversation(o.model, [], params)
        for m in messages:
            conv.add(m)
        req = conv.request()
        cache = current_judge_cache.get() or self.memory
        client = ModelClient(
            o.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL, o.model,
            api_key=os.environ.get(o.api_key_env or "OPENAI_API_KEY") or None,
            timeout_s=o.timeout_s, max_attempts=o.max_attempts, backoff_s=o.backoff_s,
            max_backoff_s=o.max_backoff_s, max_retry_after_s=o.max_retry_after_s,
            concurrency=o.concurrency, requests_per_second=o.requests_per_second,
            prices=o.prices)
        try:
            with use_tape(cache):
                data, _ = await client.complete(req)
        except AgentError as e:
            raise InfraError(f"judge {self.label!r}: {e}") from e
        finally:
            self.requests += client.requests
            self.cached += client.requests == 0
            await client.aclose()
        return _content(data)


# --- reading answers -----------------------------------------------------------------------
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def _json_answer(text: str) -> dict[str, Any] | None:
    t = text.strip()
    m = _FENCE.match(t)
    if m:
        t = m.group(1)
    if not t.startswith("{"):
        return None
    try:
        data = json.loads(t)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_answer(text: str, word: str, pattern: str) -> tuple[str, str] | None:
    """The last `WORD: value` in an answer (or a JSON object's `word` key) and the reasoning
    before it; None when the answer has no readable verdict."""
    data = _json_answer(text)
    if data is not None:
        value = data.get(word.lower(), data.get(word))
        if value is not None and re.fullmatch(pattern, str(value).strip(), re.I):
            why = data.get("reasoning") or data.get("explanation") or ""
            return str(value).strip(), str(why)
        return None
    found = list(re.finditer(rf"{word}\**\s*[:=]\s*\**\s*({pattern})\b", text, re.I))
    if not found:
        return None
    m = found[-1]
    why = text[:m.start()].strip().rstrip("*#").strip() or text[m.end():].strip()
    return m.group(1), why


@dataclass
class JudgeResult:
    """The judge's answer on one item, over its samples."""

    asked: int  # samples asked
    votes: int = 0  # readable samples that passed
    readable: int = 0  # samples with a readable verdict
    scores: list[int] = field(default_factory=list)  # per readable sample, on a score scale
    reasoning: str = ""  # of the first sample that agrees with the majority
    problem: str = ""  # why there is no verdict

    @property
    def judged(self) -> bool:
        return self.readable > 0 and 2 * self.votes != self.readable

    @property
    def passed(self) -> bool:
        return self.judged and 2 * self.votes > self.readable

    @property
    def score(self) -> float:
        """The share of readable samples that passed."""
        return self.votes / self.readable if self.readable else 0.0

    def reason(self) -> str:
        if not self.judged:
            why = self.problem or f"its {self.readable} readable answers split evenly"
            return f"{COULD_NOT_JUDGE}: {why}"
        head = f"judge: {'PASS' if self.passed else 'FAIL'}"
        if self.asked > 1 or self.readable != self.asked:
            head += f" ({self.votes}/{self.readable} samples pass"
            head += f"; {self.asked - self.readable} unreadable)" \
                if self.readable != self.asked else ")"
        if self.scores:
            head += f" score {'/'.join(map(str, self.scores))}"
        return f"{head}: {self.reasoning}" if self.reasoning else head


# --- the grader ----------------------------------------------------------------------------
def _sha(obj: Any) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()[:16]


def fingerprint_parts(o: EndpointOptions) -> dict[str, str]:
    """The judge's identity, part by part (a calibration names the parts that changed)."""
    prompt = {"version": PROMPT_VERSION, "rubric": o.rubric.strip(),
              "system": o.system_prompt, "show": o.show, "task_fields": o.task_fields,
              "max_chars": o.max_chars, "kind": type(o).__name__}
    if isinstance(o, JudgeOptions):
        prompt["scale"] = o.scale if isinstance(o.scale, str) else o.scale.model_dump()
    examples = [e.model_dump() for e in getattr(o, "examples", [])]
    return {"model": o.model, "prompt": _sha(prompt), "examples": _sha(examples),
            "sampling": _sha([o.sampling(i) for i in range(o.samples)])}


def fingerprint(o: EndpointOptions) -> str:
    return _sha(fingerprint_parts(o))


def scale_text(scale: Scale) -> tuple[str, str]:
    """The scale in words, and the answer format it asks for."""
    if isinstance(scale, ScoreScale):
        lines = [f"Score from {scale.min} to {scale.max}; {scale.pass_at} or more passes."]
        lines += [f"- {k}: {v}" for k, v in sorted(scale.anchors.items())]
        return "\n".join(lines), (f"Explain your reasoning briefly, then end with one line: "
                                  f"SCORE: <a whole number from {scale.min} to {scale.max}>")
    return ("PASS if what is graded meets the rubric, FAIL otherwise.",
            "Explain your reasoning briefly, then end with one line: VERDICT: PASS or "
            "VERDICT: FAIL")


@register("grader", "llm_judge")
class LLMJudge(Grader):
    """An LLM grades a decision (node-level) or the episode (outcome) against a rubric; see
    the module docstring. Grades are `noisy`; the report corrects the rates they give with
    the judge's calibration."""

    Options = JudgeOptions
    options: JudgeOptions
    trust = Trust.noisy

    def __init__(self, options: JudgeOptions, label: str | None = None) -> None:
        super().__init__(options, label)
        self.client = JudgeClient(options, self.label)
        self.fingerprint = fingerprint(options)

    @property
    def requests(self) -> int:
        """HTTP requests this judge has sent (retries included)."""
        return self.client.requests

    def messages(self, context: dict[str, Any] | str) -> list[dict[str, Any]]:
        o = self.options
        scale, answer = scale_text(o.scale)
        parts = ["# Rubric", o.rubric.strip(), "", "# Scale", scale]
        if o.examples:
            parts += ["", "# Examples graded by a person"]
            for i, ex in enumerate(o.examples, 1):
                passed, score = parse_label(ex.label, o.scale)
                verdict = f"SCORE: {score}" if score is not None else \
                    f"VERDICT: {'PASS' if passed else 'FAIL'}"
                parts += ["", f"## Example {i}", self.render(ex.context), ""]
                if ex.explanation.strip():
                    parts.append(f"Why: {ex.explanation.strip()}")
                parts.append(verdict)
        parts += ["", TO_GRADE, self.render(context), "", answer]
        return [{"role": "system", "content": o.system_prompt or DEFAULT_SYSTEM},
                {"role": "user", "content": "\n".join(parts)}]

    def render(self, context: dict[str, Any] | str) -> str:
        o = self.options
        return render_context(context, o.show, o.task_fields, o.max_chars)

    def read(self, text: str) -> tuple[bool, int | None, str] | None:
        """(passed, score, reasoning) from one answer, or None when it has no verdict."""
        scale = self.options.scale
        if isinstance(scale, ScoreScale):
            got = read_answer(text, "SCORE", r"\d+")
            if got is None or not scale.min <= int(got[0]) <= scale.max:
                return None
            score = int(got[0])
            return score >= scale.pass_at, score, got[1]
        got = read_answer(text, "VERDICT", r"pass|fail")
        if got is None:
            return None
        return got[0].lower() == "pass", None, got[1]

    async def judge(self, context: dict[str, Any] | str) -> JudgeResult:
        """Ask the judge about one context, `samples` times. Raises InfraError when the
        endpoint stays down."""
        messages = self.messages(context)
        out = JudgeResult(asked=self.options.samples)
        answers = []
        for i in range(self.options.samples):
            text = await self.client.ask(messages, self.options.sampling(i))
            got = self.read(text)
            answers.append(got)
            if got is None:
                if not out.problem:
                    word = "SCORE" if isinstance(self.options.scale, ScoreScale) else "VERDICT"
                    out.problem = f"no {word} line in the answer: {text[:200]!r}"
                continue
            out.readable += 1
            out.votes += got[0]
            if got[1] is not None:
                out.scores.append(got[1])
        if out.judged:
            out.reasoning = next(a[2] for a in answers if a is not None
                                 and a[0] == out.passed).strip()[:4000]
        return out

    def to_grade(self, r: JudgeResult, node: str | None) -> Grade:
        return self.grade(r.passed, r.reason(), score=r.score, node=node)

    async def grade_step(self, ctx: StepContext) -> Grade:
        r = await self.judge(step_context(ctx.node, ctx.decision, ctx.result, ctx.task))
        return self.to_grade(r, ctx.node)

    async def grade_outcome(self, ctx: OutcomeContext) -> Grade:
        steps = ctx.extra.get("steps")
        if steps is not None:
            context = outcome_context(ctx.task, steps, ctx.end_reason)
        else:  # a loop that does not pass its steps: the world's messages stand in
            context = _jsonable({"task": ctx.task, "messages": ctx.outcome.get("messages", []),
                                 "end_reason": ctx.end_reason})
        return self.to_grade(await self.judge(context), None)


# --- judge files ---------------------------------------------------------------------------
JUDGE_TYPES = {"llm_judge": "trialrun.graders.judge:LLMJudge",
               "pairwise": "trialrun.graders.pairwise:PairwiseJudge"}


@dataclass
class JudgeFile:
    """A judge defined in its own YAML file (`trialrun grade`, `calibrate`, `pairwise`): the
    keys of a scenario's grader entry (`type`, default llm_judge; `name`, default the file's
    stem; the judge's options), plus `node` (a name or a list) for a node-level judge; no
    `node` grades outcomes."""

    path: str
    name: str
    type: str
    nodes: list[str] | None
    options: dict[str, Any]
    judge: Any  # LLMJudge or PairwiseJudge

    def spec(self) -> dict[str, Any]:
        """What is stored with the grades it makes (never a key: the file only names one)."""
        return {"type": self.type, "name": self.name,
                **({"node": self.nodes} if self.nodes else {}), **self.options}


def load_judge(path: str | Path) -> JudgeFile:
    """Read a judge file; every problem as `file:line:column: field: message` (raises
    ScenarioError, an InvalidScenario)."""
    from pydantic import ValidationError

    from trialrun.registry import load_class
    from trialrun.scenarios.issues import Collector, Issue, ScenarioError, in_line_order
    from trialrun.scenarios.yaml_source import YamlSyntaxError, load_yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError([Issue(str(p), None, None, "", f"cannot read: {e.strerror}")]) \
            from None
    try:
        data, smap = load_yaml(text)
    except YamlSyntaxError as e:
        pos = e.position
        raise ScenarioError([Issue(str(p), pos.line if pos else None,
                                   pos.column if pos else None, "", str(e))]) from None
    out = Collector(str(p), smap, data)
    if not isinstance(data, dict):
        out.add((), "expected a mapping: type, name, node, model, rubric, ...")
        raise ScenarioError(out.errors)
    options = dict(data)
    kind = options.pop("type", "llm_judge")
    name = options.pop("name", None) or p.stem
    node = options.pop("node", None)
    if kind not in JUDGE_TYPES:
        from trialrun.registry import did_you_mean

        out.add(("type",), f"unknown judge type {kind!r}{did_you_mean(str(kind), JUDGE_TYPES)}"
                f" (expected {' or '.join(JUDGE_TYPES)})")
        raise ScenarioError(out.errors)
    if not isinstance(name, str):
        out.add(("name",), "expected a name (a string)")
    nodes = [node] if isinstance(node, str) else node
    if nodes is not None and not (isinstance(nodes, list)
                                  and all(isinstance(n, str) for n in nodes) and nodes):
        out.add(("node",), "expected a node name or a list of node names")
    cls = load_class(JUDGE_TYPES[kind], "judge")
    try:
        validated = cls.Options.model_validate(options)
    except ValidationError as e:
        out.add_validation((), e, cls.Options, top_keys=["type", "name", "node"],
                           owner=f"judge type {kind!r}")
    if out.errors:
        raise ScenarioError(in_line_order(out.errors))
    return JudgeFile(str(p), name, kind, nodes, options, cls(validated, name))


async def judge_many(judge: Any, contexts: Sequence[dict[str, Any] | str],
                     concurrency: int = 8, on_done: Any = None
                     ) -> list[JudgeResult | InfraError]:
    """Judge many contexts, `concurrency` at a time, results in order. An endpoint that
    stays down fails its item with InfraError, and the items not yet asked fail with it
    (no point waiting out the retries of each)."""
    import anyio

    out: list[JudgeResult | InfraError | None] = [None] * len(contexts)
    limiter = anyio.CapacityLimiter(max(1, concurrency))
    down: list[InfraError] = []

    async def one(i: int, context: dict[str, Any] | str) -> None:
        async with limiter:
            if down:
                out[i] = InfraError(f"not asked: {down[0]}")
            else:
                try:
                    out[i] = await judge.judge(context)
                except InfraError as e:
                    down.append(e)
                    out[i] = e
        if on_done is not None:
            on_done()

    async with anyio.create_task_group() as tg:
        for i, c in enumerate(contexts):
            tg.start_soon(one, i, c)
    return out  # type: ignore[return-value]
