"""A multi-stage workflow: a support call goes through retrieve -> extract -> rules -> crm_update.

Not a chat: the input is a support-call transcript, generated from the seed out of templates
(`calls.py`), and the agent runs it through a pipeline of four stages, one tool (and node)
each:

- `retrieve`: find the caller's records (ground truth: the caller's customer id);
- `extract`: intent, products, sentiment and the rep's commitments (ground truth: the values
  the transcript was generated from);
- `rules`: apply the written business rules (`policy.py`) to the record and the extraction
  (ground truth: the outcome and amount the rules give for the true record and true
  extraction);
- `crm_update`: write the final record (ground truth: the record built from all of the above).

Every stage is graded against the truth, not against its own inputs, so an early error shows
up again at every later stage it reaches: compounding is visible end to end. `outcome()`
also says which later failures only followed faithfully from an earlier one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trialrun.registry import register
from trialrun.sandbox.world import ToolError, Verdict, World, WorldStatus, tool
from trialrun.sandbox.worlds.workflow.calls import (
    COMMITMENTS,
    INTENTS,
    SENTIMENTS,
    CallSpec,
    Product,
    draw_call,
    write_transcript,
)
from trialrun.sandbox.worlds.workflow.policy import (
    OUTCOMES,
    PLANS,
    PRODUCTS,
    Rules,
    crm_record,
    policy_text,
    rule_outcome,
)
from trialrun.sandbox.worlds.workflow.tasks import generate_tasks
from trialrun.trajectory import Decision, Observation, ToolResult

STAGES = ("retrieve", "extract", "rules", "crm_update")
DEFAULT_INSTRUCTION = "Process this support call through the pipeline."
# How the pipeline is run and judged (judge() below), as the agent reads it before the rules.
PIPELINE = """The pipeline has four stages, one tool each, run in this order:
1. retrieve: load the caller's record by customer id (search_customers finds it from the
   name and the phone number's last four digits the caller gives).
2. extract: the call's intent, the products it is about, the customer's sentiment and what
   the rep promised (commitments), as the transcript states them.
3. rules: the outcome and amount the business rules below give for the record and the
   extraction.
4. crm_update: the final record. It cannot be undone: get it right first.
Every stage is checked against the facts of the call, not against your earlier stages.
Work only through the tools: there is no one to send a message to. If you are unsure,
ask a supervisor (ask_human). Finish once crm_update has written the record."""

# Strings from a vocabulary: the tool schema lists the values (as the old hand-written schema
# did), but the stage checks them itself, so a value outside them gets the stage's own message.
IntentName = Annotated[str, Field(json_schema_extra={"enum": list(INTENTS)})]
SentimentName = Annotated[str, Field(json_schema_extra={"enum": list(SENTIMENTS)})]
OutcomeName = Annotated[str, Field(json_schema_extra={"enum": list(OUTCOMES)})]

FIRST_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia",
               "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara"]
LAST_NAMES = ["Ruiz", "Okafor", "Nakamura", "Schmidt", "Kowalski", "Haddad", "Silva", "Novak",
              "Larsen", "Moreau", "Patel", "Ivanova", "Kim", "Osei", "Rossi"]


# --- what a scenario may say: the `world:` options and each task's fields -------------------
class WorkflowOptions(Rules):
    """The business rules' numbers (`Rules`), and the customer database around the caller."""

    customers: int = Field(40, ge=0, le=100_000, description="background customers")
    company: str = "Northwind Telecom"


class CustomerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="default: drawn from the seed")
    plan: Literal["basic", "plus", "premium"] | None = None
    tenure_months: int | None = Field(None, ge=0)
    products: list[Product] | None = Field(None, description="what the customer has; always "
                                           "includes the products the call is about")


class WorkflowTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call: CallSpec | None = Field(None, description="default: drawn from the seed")
    customer: CustomerSpec = Field(default_factory=CustomerSpec)
    namesakes: int = Field(0, ge=0, le=5, description="other customers with the caller's name")
    small_talk: int = Field(0, ge=0, le=10, description="filler lines in the transcript")
    distractors: int = Field(0, ge=0, le=3, description="lines about products that are fine")

    @model_validator(mode="after")
    def _owns_called_products(self) -> WorkflowTask:
        c = self.customer
        if self.call and c.products is not None:
            missing = [p for p in self.call.products if p not in c.products]
            if missing:
                raise ValueError(f"the call is about {', '.join(missing)}, which "
                                 "customer.products does not include")
        return self


@register("world", "workflow")
class WorkflowWorld(World):
    # What outcome() returns: `trialrun validate` checks outcome expressions against it.
    state_keys = frozenset({"crm"})  # what its expected final state holds (state_equals)
    outcome_keys = frozenset({"expected_state", "faithful", "fields", "first_error", "produced",
        "reason", "score", "stages", "state", "success", "truth", "user_fault"})
    Options = WorkflowOptions
    Task = WorkflowTask
    options: WorkflowOptions
    spec: WorkflowTask

    def policy_text(self) -> str:
        return policy_text(self.options)

    # --- set-up ------------------------------------------------------------------------
    def reset(self) -> Observation:
        rng, spec = self.rng, self.spec
        call = spec.call or draw_call(rng, 2 if spec.distractors or spec.namesakes else 1)
        self.customers: dict[str, dict[str, Any]] = {}
        used_last4: set[str] = set()

        def last4() -> str:
            while True:
                x = f"{rng.randint(0, 9999):04d}"
                if x not in used_last4:
                    used_last4.add(x)
                    return x

        def add(cid: str, name: str, plan: str, tenure: int, products: list[str]) -> None:
            self.customers[cid] = {
                "customer_id": cid, "name": name, "phone_last4": last4(), "plan": plan,
                "tenure_months": tenure,
                "products": [{"code": p, "monthly": round(PRODUCTS[p] * PLANS[plan], 2)}
                             for p in sorted(set(products))]}

        ids = rng.sample(range(1000, 10000), self.options.customers + spec.namesakes + 1)
        c = spec.customer
        name = c.name or f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        owned = sorted(set(c.products or []) | set(call.products) |
                       set(rng.sample(sorted(PRODUCTS), rng.randint(0, 2))
                           if c.products is None else []))
        self.caller = f"C{ids.pop()}"
        add(self.caller, name, c.plan or rng.choice(sorted(PLANS)),
            c.tenure_months if c.tenure_months is not None else rng.randint(1, 60), owned)
        for _ in range(spec.namesakes):
            add(f"C{ids.pop()}", name, rng.choice(sorted(PLANS)), rng.randint(1, 60),
                rng.sample(sorted(PRODUCTS), rng.randint(1, 3)))
        for _ in range(self.options.customers):
            other = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            if other == name:  # namesakes are the task's choice, never the seed's
                continue
            add(f"C{ids.pop()}", other, rng.choice(sorted(PLANS)), rng.randint(1, 60),
                rng.sample(sorted(PRODUCTS), rng.randint(1, 3)))

        self.call = call
        self.transcript = write_transcript(
            rng, call, company=self.options.company, name=name,
            last4=self.customers[self.caller]["phone_last4"], owned=owned,
            small_talk=spec.small_talk, distractors=spec.distractors)
        truth_ex = {"intent": call.intent, "products": sorted(call.products),
                    "sentiment": call.sentiment, "commitments": sorted(set(call.commitments))}
        record = self.customers[self.caller]
        truth_rules = rule_outcome(self.options, record, truth_ex)
        self.truth = {"retrieve": self.caller, "extract": truth_ex, "rules": truth_rules,
                      "crm_update": crm_record(self.caller, truth_ex, truth_rules)}
        self.out: dict[str, Any] = {s: None for s in STAGES}  # what each stage produced
        self.retrieved: dict[str, Any] | None = None
        self.asks = 0
        # A task's own instruction reaches the agent apart from this text (the episode's
        # AgentContext.instruction, which LLM agents show first): the text states one only
        # when the task gives none, so that it is never said twice.
        parts = [] if self.task.get("instruction") else [DEFAULT_INSTRUCTION]
        parts += [PIPELINE, self.policy_text(), f"Transcript:\n{self.transcript}"]
        return Observation(
            text="\n\n".join(parts),
            data={"transcript": self.transcript, "policy": self.policy_text(),
                  "policy_params": self.options.model_dump(include=set(Rules.model_fields)),
                  "stages": list(STAGES),
                  "vocabulary": {"intent": list(INTENTS), "sentiment": list(SENTIMENTS),
                                 "products": sorted(PRODUCTS), "commitments": list(COMMITMENTS),
                                 "outcome": list(OUTCOMES)}})

    # --- tools -----------------------------------------------------------------------------
    def execute(self, node: str, tool: str, args: dict[str, Any]) -> ToolResult:
        if tool in self.declared_tools and self.out["crm_update"] is not None:
            raise ToolError("the pipeline is complete: the CRM record is written")
        return self.call_tool(tool, args)

    @tool(seconds=3)
    def search_customers(self, name: str = "", phone_last4: str = "") -> list[dict[str, Any]]:
        """Find customers by name and/or the last four digits of their phone number; any
        word of the name matches. Returns id, name and phone_last4 of each match.

        Args:
            name: the caller's name, or part of it
            phone_last4: the last four digits of the account's phone number, e.g. "0427"
        """
        words = {w.lower() for w in str(name).split()}
        if not words and not phone_last4:
            raise ToolError("give a name, phone_last4 or both")
        hits = [c for c in self.customers.values()
                if (not words or words & set(c["name"].lower().split()))
                and (not phone_last4 or c["phone_last4"] == str(phone_last4))]
        return [{k: c[k] for k in ("customer_id", "name", "phone_last4")}
                for c in sorted(hits, key=lambda c: c["customer_id"])]

    @tool(seconds=5)
    def retrieve(self, customer_id: str) -> dict[str, Any]:
        """Stage 1: load the caller's record: plan, tenure, and the products they have with
        their monthly prices.

        Args:
            customer_id: the caller's id, as search_customers gives it
        """
        record = self.customers.get(customer_id)
        if record is None:
            raise ToolError(f"no customer {customer_id!r}")
        self.out["retrieve"] = customer_id
        self.retrieved = record
        return record

    @tool(seconds=20)
    def extract(self, intent: IntentName, products: list[str], sentiment: SentimentName,
                commitments: list[str]) -> dict[str, Any]:
        """Stage 2: record the facts of the call, as the transcript states them.

        Args:
            intent: why the customer called: billing_dispute, outage, cancel, upgrade or
                tech_support
            products: the products the call is about: fiber, mobile, tv, landline
            sentiment: the customer's mood: positive, neutral, negative or angry
            commitments: what the rep promised: callback, replacement, technician_visit,
                email_summary (an empty list if nothing)
        """
        ex = _check_extraction(intent, products, sentiment, commitments)
        self.out["extract"] = ex
        return ex

    @tool(seconds=5)
    def rules(self, outcome: OutcomeName, amount: float) -> dict[str, Any]:
        """Stage 3: the business rules' outcome and amount for the retrieved record and the
        extraction.

        Args:
            outcome: escalate, refund, credit or none
            amount: the amount of the refund or credit, rounded to cents; 0 for escalate and
                none
        """
        if self.out["retrieve"] is None or self.out["extract"] is None:
            raise ToolError("the rules stage acts on the retrieved record and the extraction: "
                            "run retrieve and extract first")
        if outcome not in OUTCOMES:
            raise ToolError(f"outcome must be one of {', '.join(OUTCOMES)}")
        self.out["rules"] = {"outcome": outcome, "amount": round(float(amount), 2)}
        return self.out["rules"]

    @tool(seconds=10, irreversible=True)
    def crm_update(self, customer_id: str, intent: str, outcome: str, amount: float,
                   follow_ups: list[str]) -> dict[str, Any]:
        """Stage 4: write the final CRM record. This completes the pipeline and cannot be
        undone.

        Args:
            customer_id: the caller's id
            intent: the call's intent
            outcome: the rules' outcome
            amount: the rules' amount
            follow_ups: the rep's commitments, sorted
        """
        if self.out["rules"] is None:
            raise ToolError("the CRM record is written last: run the rules stage first")
        self.out["crm_update"] = {"customer_id": customer_id, "intent": intent,
                                  "outcome": outcome, "amount": round(float(amount), 2),
                                  "follow_ups": sorted(str(f) for f in follow_ups)}
        return {"written": True}

    def human_answer(self, question: str) -> str:
        """A supervisor: knows who called; otherwise points back at the rules."""
        self.asks += 1
        if self.out["retrieve"] is None:
            return f"The caller is customer {self.caller}."
        return "Follow the business rules as written."

    # --- ground truth ----------------------------------------------------------------------
    def _faithful(self, stage: str, value: Any) -> bool:
        """Would this output be right if the earlier stages' outputs were the truth?"""
        if stage == "rules":
            return value == rule_outcome(self.options, self.retrieved, self.out["extract"])
        if stage == "crm_update":
            return value == crm_record(self.out["retrieve"], self.out["extract"],
                                       self.out["rules"])
        return value == self.truth[stage]

    def _stage_value(self, tool: str, args: dict[str, Any]) -> Any:
        if tool == "retrieve":
            return args.get("customer_id")
        if tool == "extract":
            return _check_extraction(args.get("intent"), args.get("products"),
                                     args.get("sentiment"), args.get("commitments"))
        if tool == "rules":
            return {"outcome": args.get("outcome"), "amount": round(float(args["amount"]), 2)}
        return {"customer_id": args.get("customer_id"), "intent": args.get("intent"),
                "outcome": args.get("outcome"), "amount": round(float(args["amount"]), 2),
                "follow_ups": sorted(str(f) for f in args.get("follow_ups") or [])}

    def judge(self, d: Decision) -> Verdict:
        if d.kind == "ask_human":
            return Verdict(correct=True, reason="asked the supervisor")
        if d.kind == "message":
            return Verdict(correct=False, reason="a pipeline has no one to talk to")
        if d.kind == "finish":
            done = self.out["crm_update"] is not None
            return Verdict(correct=done, reason="pipeline complete" if done
                           else "finished before the CRM record was written")
        tool = d.tool or ""
        if tool == "search_customers":
            return Verdict(correct=True, reason="read-only lookup")
        try:
            value = self._stage_value(tool, d.args)
        except (ToolError, TypeError, ValueError, KeyError) as e:
            return Verdict(correct=False, reason=f"malformed {tool}: {e}")
        ok = value == self.truth[tool]
        if ok:
            reason = "matches the ground truth"
        elif tool == "extract":
            wrong = [k for k, v in value.items() if v != self.truth["extract"][k]]
            reason = f"wrong {', '.join(wrong)}"
        elif tool in ("rules", "crm_update") and self._faithful(tool, value):
            first = next((s for s in STAGES if self.out[s] is not None
                          and self.out[s] != self.truth[s]), "an earlier stage")
            reason = f"follows faithfully from the error at {first} (propagated)"
        else:
            reason = f"expected {self.truth[tool]!r}"
        # Writing a wrong record cannot be undone: that is when a human was needed.
        return Verdict(correct=ok, reason=reason, help_needed=not ok and tool == "crm_update")

    def reference_decision(self, decision: Decision) -> Decision | None:
        tool = decision.tool
        if decision.kind != "tool_call" or tool not in STAGES:
            return None
        t = self.truth[tool]
        args = {"customer_id": t} if tool == "retrieve" else dict(t)
        return Decision(kind="tool_call", node=decision.node, tool=tool, args=args)

    def _stages(self) -> dict[str, bool | None]:
        """Per stage: right (True), wrong (False), or never ran (None)."""
        return {s: None if self.out[s] is None else self.out[s] == self.truth[s]
                for s in STAGES}

    def status(self) -> WorldStatus:
        done = self.out["crm_update"] is not None
        metrics = {f"stage_{s}": float(bool(ok)) for s, ok in self._stages().items()}
        return WorldStatus(done=done, reason="CRM record written" if done else "",
                           metrics=metrics)

    def outcome(self) -> dict[str, Any]:
        stages = self._stages()
        first_error = next((s for s in STAGES if stages[s] is not True), None)
        ex, truth_ex = self.out["extract"], self.truth["extract"]
        fields = {k: bool(ex) and ex[k] == v for k, v in truth_ex.items()}
        faithful = {s: self.out[s] is not None and self._faithful(s, self.out[s])
                    for s in ("rules", "crm_update")}
        success = stages["crm_update"] is True
        return {
            "state": {"crm": self.out["crm_update"]},
            "expected_state": {"crm": self.truth["crm_update"]},
            "stages": stages, "fields": fields, "faithful": faithful,
            "first_error": first_error, "truth": self.truth, "produced": self.out,
            "success": success, "score": sum(1 for v in stages.values() if v) / len(STAGES),
            "reason": "record correct" if success else
            f"first wrong or missing stage: {first_error}",
            "user_fault": False,
        }

    # --- state -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"out": self.out, "asks": self.asks}

    def load_state(self, state: dict[str, Any]) -> None:
        self.out = {s: state["out"][s] for s in STAGES}
        self.asks = int(state["asks"])
        cid = self.out["retrieve"]
        self.retrieved = self.customers.get(cid) if cid else None

    # --- generated tasks -------------------------------------------------------------------
    @classmethod
    def generate_tasks(cls, n: int, seed: int, difficulty: str = "medium",
                       **params: Any) -> list[dict[str, Any]]:
        return generate_tasks(n, seed, difficulty, **params)


def _check_extraction(intent: Any, products: Any, sentiment: Any,
                      commitments: Any) -> dict[str, Any]:
    if intent not in INTENTS:
        raise ToolError(f"intent must be one of {', '.join(INTENTS)}")
    if sentiment not in SENTIMENTS:
        raise ToolError(f"sentiment must be one of {', '.join(SENTIMENTS)}")
    if not isinstance(products, list) or any(p not in PRODUCTS for p in products):
        raise ToolError(f"products must be a list drawn from {', '.join(PRODUCTS)}")
    if not isinstance(commitments, list) or any(c not in COMMITMENTS for c in commitments):
        raise ToolError(f"commitments must be a list drawn from {', '.join(COMMITMENTS)}")
    return {"intent": intent, "products": sorted(set(products)), "sentiment": sentiment,
            "commitments": sorted(set(commitments))}
