"""The records every part shares: decisions, tool results, grades, steps and episodes.

These pydantic models are the boundary between worlds, agents, graders, the runner and the
store. They are plain data so that an episode can be stored, replayed bit for bit and
analysed without the objects that produced it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class Trust(StrEnum):
    trusted = "trusted"  # deterministic checks, tests, state assertions
    noisy = "noisy"  # LLM judges and other estimates


_TRUSTED = Trust.trusted  # a module constant: `Trust.trusted` is a descriptor call per read


class EndReason(StrEnum):
    """Why an episode ended; kept apart in every metric (DESIGN.md invariants)."""

    finished = "finished"  # the agent said it was done
    terminated = "terminated"  # the world ended it (goal reached, bankrupt, irrecoverable)
    truncated = "truncated"  # a budget ran out
    aborted = "aborted"  # a human denied and the policy stops
    error = "error"  # harness or infrastructure failure; retried, never scored
    paused = "paused"  # waiting for a real reviewer; goes on with `run --resume`, never scored


class ToolSpec(BaseModel):
    """A tool a world offers: what the agent sees, plus what checkpoints need to know."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    irreversible: bool = False

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ModelCall(BaseModel):
    """One call to a language model behind a decision: enough to replay it without the model.

    Storage stays linear in the conversation: `messages` holds only the messages added since
    the episode's previous call (all of them for the first), and `key` identifies the full
    normalised request (see `trialrun.agents.model_client.request_key`)."""

    key: str  # sha256 of the normalised request: model, messages, tools, sampling params
    index: int = 0  # the n-th model call of the episode, from 0
    model: str = ""
    messages: list[dict[str, Any]] = Field(default_factory=list)  # added since the last call
    response: dict[str, Any] = Field(default_factory=dict)  # the endpoint's response body
    latency_ms: float = 0.0  # the successful HTTP round trip
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    attempts: int = 1  # HTTP attempts, retries of endpoint faults included


DecisionKind = Literal["tool_call", "message", "ask_human", "finish"]


class Decision(BaseModel):
    """One thing the agent chose at one named node. Stored verbatim for replay."""

    kind: DecisionKind
    node: str
    tool: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    text: str | None = None
    confidence: float | None = None  # agent-reported P(correct), if it gives one
    tokens: int = 0
    cost: float = 0.0
    # The model call(s) behind this decision (LLM agents); empty for other agents and for
    # the later tool calls of a turn that asked for several at once.
    model_calls: list[ModelCall] = Field(default_factory=list)
    # Why the agent's arguments could not be read (e.g. a model sent text that is not JSON):
    # the call is the agent's graded error, whatever the tool's schema says.
    args_error: str | None = None
    # The agent itself asked a human to approve this action before it runs (a LangGraph
    # `interrupt()`), in its own words: reviewed at the checkpoint whatever the policy says.
    approval: str | None = None

    def label(self) -> str:
        if self.kind == "tool_call":
            return f"{self.tool}({', '.join(f'{k}={v!r}' for k, v in self.args.items())})"
        if self.kind == "finish":
            return "finish"
        return f"{self.kind}: {self.text or ''}"


class ToolResult(BaseModel):
    ok: bool
    output: Any = None
    error: str | None = None
    # Who caused a failure: the agent (bad call), the simulated user, or the world itself.
    fault: Literal["agent", "user", "world"] | None = None


class Observation(BaseModel):
    """What the agent sees before deciding: text for LLMs, data for scripted agents."""

    text: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class Grade(BaseModel):
    # A value, never changed once given: graders may hand out one instance many times.
    model_config = ConfigDict(frozen=True)

    grader: str
    passed: bool
    score: float = 1.0
    reason: str = ""
    trust: Trust = Trust.trusted
    node: str | None = None  # None for outcome grades


class CheckpointEvent(BaseModel):
    """A human check before a decision took effect."""

    policy: str  # the checkpoint policy's label, e.g. "every_n:3"
    reason: str = ""  # why the policy asked: "irreversible action", "confidence 0.42 < 0.8"
    reviewed: bool
    approved: bool | None = None
    reviewer: str = "simulated"
    seconds: float = 0.0
    cost: float = 0.0
    decision_was_correct: bool | None = None  # ground truth at review time, if known
    action: Literal["proceed", "retry", "takeover", "abort"] = "proceed"
    takeover: Decision | None = None  # the action a person took instead, when they took over


class Step(BaseModel):
    index: int
    node: str
    decision: Decision
    result: ToolResult | None = None
    checkpoint: CheckpointEvent | None = None
    grades: list[Grade] = Field(default_factory=list)
    # Ground truth for escalation analysis: did this step need a human (blocked, ambiguous,
    # about to be wrong, or irreversible and risky)?
    help_needed: bool = False
    irreversible: bool = False  # the decision's effect cannot be undone
    state_digest: str = ""
    sim_time: float = 0.0  # simulated seconds since the episode began, after this step
    wall_us: int = 0

    @property
    def passed(self) -> bool | None:
        """Node verdict from trusted grades; None when no grader looked at this step."""
        verdict = None  # read for every step by the store and `first_error`: one pass
        for g in self.grades:
            if g.trust == _TRUSTED:
                if not g.passed:
                    return False
                verdict = True
        return verdict


class EpisodeKey(BaseModel):
    """Identity of a planned episode inside a run: stable across resumes."""

    model_config = ConfigDict(frozen=True)

    scenario: str
    task: str
    seed: int
    trial: int

    def __str__(self) -> str:
        return f"{self.scenario}/{self.task}/s{self.seed}/t{self.trial}"


class EpisodeResult(BaseModel):
    key: EpisodeKey
    agent: str
    end_reason: EndReason
    success: bool | None = None  # None for error episodes: they are never scored
    score: float | None = None
    steps: list[Step] = Field(default_factory=list)
    outcome_grades: list[Grade] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    sim_time: float = 0.0
    wall_ms: float = 0.0
    cost: float = 0.0
    tokens: int = 0
    end_note: str = ""  # why it ended, in words ("step budget of 50 ran out")
    error: str | None = None  # the infrastructure fault, for end_reason == error
    attempts: int = 1
    ambiguous: bool = False
    user_fault: bool = False  # the simulated user, not the agent, caused the failure
    final_digest: str = ""
    policy: str = "never"  # the checkpoint policy's label, e.g. "every_n:3"
    # A fork: the episode it was forked from, and the first step this agent decided itself
    # (steps before it are the parent's, replayed).
    parent: str | None = None
    fork_at: int | None = None
    # The store's rows for this episode (id, episode row, step rows), when they were built
    # where it ran (a worker process): the writer then only inserts them. Not part of the
    # record: never serialised.
    _rows: Any = PrivateAttr(default=None)

    # Derived per-episode facts: one definition each, used by the store and everything after.
    @property
    def first_error(self) -> Step | None:
        """The first step whose trusted grades failed (the episode's first graded error)."""
        return next((st for st in self.steps if st.passed is False), None)

    @property
    def reviews(self) -> int:
        """Decisions a human reviewed at a checkpoint."""
        return sum(1 for st in self.steps if st.checkpoint is not None and st.checkpoint.reviewed)

    @property
    def asks(self) -> int:
        """Times the agent itself asked a human for help (ask_human decisions)."""
        return sum(1 for st in self.steps if st.decision.kind == "ask_human")
