"""A scripted reference pipeline for the workflow world, with per-stage error knobs.

    search -> retrieve -> extract -> rules -> crm_update

Each stage works only from what the earlier stages produced (the retrieved record, its own
extraction), as a real pipeline does, so an error compounds downstream. `error_rates:
{stage: p}` makes a stage err with probability p: `retrieve` loads another customer from the
search results, `extract` gets one field wrong, `rules` picks a wrong outcome, `crm_update`
drops a follow-up or misstates the outcome.
"""

from __future__ import annotations

import re
from typing import Any

from trialrun.agents.base import AgentContext, Feedback
from trialrun.agents.scripted import ScriptedAgent, ScriptedOptions
from trialrun.registry import register
from trialrun.sandbox.worlds.workflow.calls import COMMITMENTS, INTENTS, SENTIMENTS
from trialrun.sandbox.worlds.workflow.policy import (
    OUTCOMES,
    PRODUCTS,
    Rules,
    crm_record,
    rule_outcome,
)
from trialrun.sandbox.worlds.workflow.world import STAGES
from trialrun.trajectory import Decision, Observation

# The extractor's cue words (what an LLM would pick up from the transcript).
INTENT_CUES = {"billing_dispute": ("charged twice", "double charge"),
               "outage": (" down ", "outage"), "cancel": ("cancel",),
               "upgrade": ("upgrade",), "tech_support": ("setting up", "configure")}
PRODUCT_CUES = {"fiber": ("fiber",), "mobile": ("mobile",), "tv": ("tv package",),
                "landline": ("landline",)}
SENTIMENT_CUES = (("angry", ("unacceptable", "furious")),
                  ("negative", ("disappointed", "frustrating")),
                  ("positive", ("appreciate", "wonderful")))
COMMIT_CUES = {"callback": ("callback", "call you back"), "replacement": ("replacement",),
               "technician_visit": ("technician",), "email_summary": ("summary",)}


def extract_call(transcript: str) -> dict[str, Any]:
    """Keyword extraction from a transcript: who called, and the call's facts."""
    customer = [t for w, t in _lines(transcript) if w == "Customer"]
    rep = [t for w, t in _lines(transcript) if w == "Rep"]
    said = " " + " ".join(customer).lower().replace(",", " ").replace(".", " ") + " "
    about = " ".join(t for t in customer if "fine" not in t).lower()  # "my TV is fine"
    name = next((m.group(1) for t in customer
                 if (m := re.search(r"(?:this is|my name is) ([A-Z]\w+ [A-Z]\w+)", t))), "")
    last4 = next((m.group(1) for t in customer if (m := re.search(r"\b(\d{4})\b", t))), "")
    intent = next((i for i, cues in INTENT_CUES.items() if any(c in said for c in cues)),
                  "tech_support")
    sentiment = next((s for s, cues in SENTIMENT_CUES if any(c in said for c in cues)),
                     "neutral")
    rep_said = " ".join(rep).lower()
    return {
        "name": name, "last4": last4, "intent": intent, "sentiment": sentiment,
        "products": sorted(p for p, cues in PRODUCT_CUES.items() if any(c in about for c in cues)),
        "commitments": sorted(c for c, cues in COMMIT_CUES.items()
                              if any(x in rep_said for x in cues)),
    }


def _lines(transcript: str) -> list[tuple[str, str]]:
    return [tuple(line.split(": ", 1)) for line in transcript.splitlines() if ": " in line]


class WorkflowAgentOptions(ScriptedOptions):
    error_nodes = STAGES


@register("agent", "scripted:workflow")
class ScriptedWorkflowAgent(ScriptedAgent):
    nodes = frozenset((*STAGES, "search", "finish"))  # every node its decisions name
    Options = WorkflowAgentOptions
    options: WorkflowAgentOptions
    waits = False  # pure computation

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        # The rules' numbers as the world states them to the agent.
        self.rules_params = Rules.model_validate(first.data.get("policy_params", {}))
        self.facts = extract_call(first.data["transcript"])
        self.phase = "search"
        self.matches: list[dict[str, Any]] = []
        self.customer_id: str | None = None
        self.record: dict[str, Any] | None = None
        self.extraction: dict[str, Any] | None = None
        self.rules: dict[str, Any] | None = None

    def _other(self, options: tuple[str, ...] | list[str], value: Any) -> Any:
        return self.rng.choice([o for o in options if o != value])

    async def decide(self, obs: Observation) -> Decision:
        f = self.facts
        if self.phase == "search":
            return self._call("search", "search_customers", name=f["name"])
        if self.phase == "retrieve":
            right = [m["customer_id"] for m in self.matches if m["phone_last4"] == f["last4"]]
            others = [m["customer_id"] for m in self.matches if m["customer_id"] not in right]
            erred = bool(others) and self._err("retrieve")
            cid = self.rng.choice(others) if erred else (right or others or ["unknown"])[0]
            return self._call("retrieve", "retrieve", erred, customer_id=cid)
        if self.phase == "extract":
            ex = {k: f[k] for k in ("intent", "products", "sentiment", "commitments")}
            erred = self._err("extract")
            if erred:
                ex = self._perturb(ex)
            self.extraction = ex
            return self._call("extract", "extract", erred, **ex)
        if self.phase == "rules":
            out = rule_outcome(self.rules_params, self.record, self.extraction)
            erred = self._err("rules")
            if erred:
                out = {"outcome": self._other(OUTCOMES, out["outcome"]), "amount": out["amount"]}
            self.rules = out
            return self._call("rules", "rules", erred, **out)
        if self.phase == "crm_update":
            rec = crm_record(self.customer_id, self.extraction, self.rules)
            erred = self._err("crm_update")
            if erred and rec["follow_ups"]:
                rec["follow_ups"] = rec["follow_ups"][:-1]
            elif erred:
                rec["outcome"] = self._other(OUTCOMES, rec["outcome"])
            return self._call("crm_update", "crm_update", erred, **rec)
        return Decision(kind="finish", node="finish", text="pipeline complete")

    def _perturb(self, ex: dict[str, Any]) -> dict[str, Any]:
        ex = dict(ex)
        field = self.rng.choice(["intent", "products", "sentiment", "commitments"])
        if field == "intent":
            ex["intent"] = self._other(INTENTS, ex["intent"])
        elif field == "sentiment":
            ex["sentiment"] = self._other(SENTIMENTS, ex["sentiment"])
        elif field == "products":
            ex["products"] = [self._other(sorted(PRODUCTS), ex["products"][0] if ex["products"]
                                          else None)]
        elif ex["commitments"]:
            ex["commitments"] = ex["commitments"][:-1]
        else:
            ex["commitments"] = [self.rng.choice(COMMITMENTS)]
        return ex

    async def feedback(self, fb: Feedback) -> None:
        d, res = fb.decision, fb.result
        if fb.denied or d.kind != "tool_call" or res is None:
            return
        if not res.ok:
            self.phase = "finish"  # a stage refused: stop rather than loop
            return
        if d.tool == "search_customers":
            self.matches = res.output
            self.phase = "retrieve"
        elif d.tool == "retrieve":
            self.customer_id, self.record = d.args["customer_id"], res.output
            self.phase = "extract"
        elif d.tool == "extract":
            self.phase = "rules"
        elif d.tool == "rules":
            self.phase = "crm_update"
        else:
            self.phase = "finish"
