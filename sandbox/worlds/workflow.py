"""A multi-stage workflow: a support call goes through retrieve -> extract -> rules -> crm_update.

Not a chat: the input is a support-call transcript, generated from the seed out of templates,
and the agent runs it through a pipeline of four stages, one tool (and node) each:

- `retrieve`: find the caller's records (ground truth: the caller's customer id);
- `extract`: intent, products, sentiment and the rep's commitments (ground truth: the values
  the transcript was generated from);
- `rules`: apply the written business rules to the record and the extraction (ground truth:
  the outcome and amount the rules give for the true record and true extraction);
- `crm_update`: write the final record (ground truth: the record built from all of the above).

Every stage is graded against the truth, not against its own inputs, so an early error shows
up again at every later stage it reaches: compounding is visible end to end. `outcome()`
also says which later failures only followed faithfully from an earlier one.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trialrun.sandbox.world import (
    ToolError,
    Verdict,
    World,
    WorldStatus,
    call_tool_method,
    register_world,
)
from trialrun.trajectory import Decision, Observation, ToolResult, ToolSpec

STAGES = ("retrieve", "extract", "rules", "crm_update")
INTENTS = ("billing_dispute", "outage", "cancel", "upgrade", "tech_support")
SENTIMENTS = ("positive", "neutral", "negative", "angry")
PRODUCTS = {"fiber": 60.0, "mobile": 35.0, "tv": 45.0, "landline": 20.0}  # base monthly price
COMMITMENTS = ("callback", "replacement", "technician_visit", "email_summary")
OUTCOMES = ("escalate", "refund", "credit", "none")
PLANS = {"basic": 1.0, "plus": 1.2, "premium": 1.5}  # price multiplier
SECONDS = {"search_customers": 3, "retrieve": 5, "extract": 20, "rules": 5, "crm_update": 10}

POLICY = """Business rules (the first that applies decides the outcome):
1. An angry customer on the premium plan: escalate (amount 0).
2. Intent cancel: if the customer has been with us {retention_tenure_months} months or more,
   escalate (amount 0); otherwise credit {cancel_pct}% of the monthly price of the products
   mentioned.
3. Intent billing_dispute: refund one month's price of the products mentioned.
4. Intent outage: credit {outage_pct}% of the monthly price of the products mentioned, or
   {technician_pct}% if a technician visit was promised.
5. Otherwise: none (amount 0).
Prices are the customer's own monthly prices in their record; products the customer does not
have count 0. Amounts are rounded to cents.
The CRM record is: customer_id, intent, outcome, amount, and follow_ups = the commitments the
rep made, sorted."""

FIRST_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia",
               "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara"]
LAST_NAMES = ["Ruiz", "Okafor", "Nakamura", "Schmidt", "Kowalski", "Haddad", "Silva", "Novak",
              "Larsen", "Moreau", "Patel", "Ivanova", "Kim", "Osei", "Rossi"]
REPS = ["Jamie", "Morgan", "Riley", "Casey", "Avery"]

# Transcript templates. Each line carries its cue words (the scripted agent's extractor
# relies on them) and no cue of any other field, so the ground truth is the generator's.
PRODUCT_WORDS = {"fiber": "fiber internet", "mobile": "mobile plan", "tv": "TV package",
                 "landline": "landline"}
OPEN = ["Thank you for calling {company}, this is {rep}. How can I help you today?",
        "{company} support, {rep} speaking. What can I do for you?"]
IDENT = ["Hi, this is {name}.", "Hello, my name is {name}."]
ASK_ID = ["Can you confirm the last four digits of the phone number on the account?",
          "For security, what are the last four digits of the account phone number?"]
GIVE_ID = ["Sure, it's {last4}.", "It's {last4}."]
INTENT_LINES = {
    "billing_dispute": ["I was charged twice for my {products} this month.",
                        "My bill shows a double charge for my {products}."],
    "outage": ["My {products} has been down since yesterday.",
               "There has been an outage on my {products} for two days."],
    "cancel": ["I want to cancel my {products}.",
               "I'm thinking of cancelling my {products} and going elsewhere."],
    "upgrade": ["I'd like to upgrade my {products} to something faster.",
                "Can I upgrade my {products}?"],
    "tech_support": ["I need help setting up my {products}.",
                     "I can't configure my {products} properly."],
}
SENTIMENT_LINES = {
    "angry": ["This is completely unacceptable.", "I'm furious, this keeps happening."],
    "negative": ["Honestly, I'm pretty disappointed.", "This is really frustrating."],
    "neutral": ["Okay.", "Alright."],
    "positive": ["I appreciate the quick help.", "That's wonderful, thank you."],
}
ACK = ["Let me look into that for you.", "I understand, let me check your account."]
COMMIT_LINES = {
    "callback": ["I'll arrange a callback for tomorrow.", "Someone will call you back tomorrow."],
    "replacement": ["I'll send you a replacement device.", "We'll ship a replacement router."],
    "technician_visit": ["I'll book a technician to visit.",
                         "A technician will come by on Thursday."],
    "email_summary": ["I'll email you a summary of this call.",
                      "You'll get a summary by email."],
}
SMALL_TALK = ["Sorry, my dog is barking in the background.", "The weather has been awful.",
              "I'm calling from the car, so bear with me.", "I've had a long day."]
DISTRACTOR = ["My {product} is fine, by the way.", "The {product} works fine."]
CLOSE = ["Is there anything else I can help with?", "Anything else today?"]
BYE = ["No, that's all. Bye.", "That's it, bye."]


class WorkflowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customers: int = Field(40, ge=0, le=100_000, description="background customers")
    company: str = "Northwind Telecom"
    retention_tenure_months: int = Field(24, ge=0)
    cancel_credit_rate: float = Field(0.2, ge=0, le=1)
    outage_credit_rate: float = Field(0.1, ge=0, le=1)
    technician_credit_rate: float = Field(0.25, ge=0, le=1)


Product = Literal["fiber", "mobile", "tv", "landline"]
Commitment = Literal["callback", "replacement", "technician_visit", "email_summary"]


class CallSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intent: Literal["billing_dispute", "outage", "cancel", "upgrade", "tech_support"]
    products: list[Product] = Field(min_length=1, max_length=2)
    sentiment: Literal["positive", "neutral", "negative", "angry"] = "neutral"
    commitments: list[Commitment] = Field(default_factory=list)


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


class GenerateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intents: list[Literal["billing_dispute", "outage", "cancel", "upgrade", "tech_support"]] = \
        Field(default_factory=list, description="intents to draw from (default: all)")
    namesakes: int | None = Field(None, ge=0, le=5, description="default by difficulty")


def rule_outcome(cfg: WorkflowConfig, record: dict[str, Any] | None,
                 extraction: dict[str, Any] | None) -> dict[str, Any]:
    """The business rules as a function: the outcome and amount for a record and extraction.

    Shared by the world (ground truth, and 'faithful to its inputs' checks) and the scripted
    agent (its rules stage), so both read the written policy the same way."""
    if record is None or extraction is None:
        return {"outcome": "none", "amount": 0.0}
    prices = {p["code"]: p["monthly"] for p in record.get("products", [])}
    total = sum(prices.get(p, 0.0) for p in extraction.get("products", []))
    intent, sentiment = extraction.get("intent"), extraction.get("sentiment")
    if sentiment == "angry" and record.get("plan") == "premium":
        return {"outcome": "escalate", "amount": 0.0}
    if intent == "cancel":
        if record.get("tenure_months", 0) >= cfg.retention_tenure_months:
            return {"outcome": "escalate", "amount": 0.0}
        return {"outcome": "credit", "amount": round(total * cfg.cancel_credit_rate, 2)}
    if intent == "billing_dispute":
        return {"outcome": "refund", "amount": round(total, 2)}
    if intent == "outage":
        rate = cfg.technician_credit_rate if "technician_visit" in extraction.get(
            "commitments", []) else cfg.outage_credit_rate
        return {"outcome": "credit", "amount": round(total * rate, 2)}
    return {"outcome": "none", "amount": 0.0}


def crm_record(customer_id: str | None, extraction: dict[str, Any] | None,
               rules: dict[str, Any] | None) -> dict[str, Any]:
    ex, ru = extraction or {}, rules or {}
    return {"customer_id": customer_id, "intent": ex.get("intent"),
            "outcome": ru.get("outcome"), "amount": ru.get("amount"),
            "follow_ups": sorted(ex.get("commitments", []))}


@register_world("workflow")
class WorkflowWorld(World):
    Config = WorkflowConfig
    Task = WorkflowTask
    cfg: WorkflowConfig
    spec: WorkflowTask

    @classmethod
    def tool_names(cls, config: dict[str, Any]) -> set[str]:
        return set(SECONDS)

    def policy_text(self) -> str:
        c = self.cfg
        return POLICY.format(retention_tenure_months=c.retention_tenure_months,
                             cancel_pct=_pct(c.cancel_credit_rate),
                             outage_pct=_pct(c.outage_credit_rate),
                             technician_pct=_pct(c.technician_credit_rate))

    # --- set-up ------------------------------------------------------------------------
    def reset(self) -> Observation:
        rng, spec = self.rng, self.spec
        call = spec.call or _draw_call(rng, 2 if spec.distractors or spec.namesakes else 1)
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

        ids = rng.sample(range(1000, 10000), self.cfg.customers + spec.namesakes + 1)
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
        for _ in range(self.cfg.customers):
            other = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            if other == name:  # namesakes are the task's choice, never the seed's
                continue
            add(f"C{ids.pop()}", other, rng.choice(sorted(PLANS)), rng.randint(1, 60),
                rng.sample(sorted(PRODUCTS), rng.randint(1, 3)))

        self.call = call
        self.transcript = self._transcript(rng, call, name, owned)
        truth_ex = {"intent": call.intent, "products": sorted(call.products),
                    "sentiment": call.sentiment, "commitments": sorted(set(call.commitments))}
        record = self.customers[self.caller]
        truth_rules = rule_outcome(self.cfg, record, truth_ex)
        self.truth = {"retrieve": self.caller, "extract": truth_ex, "rules": truth_rules,
                      "crm_update": crm_record(self.caller, truth_ex, truth_rules)}
        self.out: dict[str, Any] = {s: None for s in STAGES}  # what each stage produced
        self.retrieved: dict[str, Any] | None = None
        self.asks = 0
        instruction = self.task.get("instruction") or (
            "Process this support call through the pipeline: retrieve the caller's records, "
            "extract the call's facts, apply the business rules, and write the CRM record.")
        return Observation(
            text=f"{instruction}\n\n{self.policy_text()}\n\nTranscript:\n{self.transcript}",
            data={"transcript": self.transcript, "policy": self.policy_text(),
                  "policy_params": self.cfg.model_dump(exclude={"customers", "company"}),
                  "stages": list(STAGES),
                  "vocabulary": {"intent": list(INTENTS), "sentiment": list(SENTIMENTS),
                                 "products": sorted(PRODUCTS), "commitments": list(COMMITMENTS),
                                 "outcome": list(OUTCOMES)}})

    def _transcript(self, rng: random.Random, call: CallSpec, name: str,
                    owned: list[str]) -> str:
        rep = rng.choice(REPS)
        products = " and ".join(PRODUCT_WORDS[p] for p in call.products)
        fine = [p for p in owned if p not in call.products]
        lines = [("Rep", rng.choice(OPEN).format(company=self.cfg.company, rep=rep)),
                 ("Customer", rng.choice(IDENT).format(name=name)),
                 ("Rep", rng.choice(ASK_ID)),
                 ("Customer", rng.choice(GIVE_ID).format(last4=self.customers[self.caller][
                     "phone_last4"])),
                 ("Customer", rng.choice(INTENT_LINES[call.intent]).format(products=products))]
        for _ in range(min(self.spec.distractors, len(fine))):
            product = fine.pop(rng.randrange(len(fine)))
            lines.append(("Customer", rng.choice(DISTRACTOR).format(
                product=PRODUCT_WORDS[product])))
        for _ in range(self.spec.small_talk):
            lines.insert(rng.randint(2, len(lines)), ("Customer", rng.choice(SMALL_TALK)))
        lines.append(("Customer", rng.choice(SENTIMENT_LINES[call.sentiment])))
        lines.append(("Rep", rng.choice(ACK)))
        for c in sorted(set(call.commitments)):
            lines.append(("Rep", rng.choice(COMMIT_LINES[c])))
        lines += [("Rep", rng.choice(CLOSE)), ("Customer", rng.choice(BYE))]
        return "\n".join(f"{who}: {text}" for who, text in lines)

    # --- tools -----------------------------------------------------------------------------
    def tools(self) -> list[ToolSpec]:
        s = {"type": "string"}
        strs = {"type": "array", "items": {"type": "string"}}
        return [
            ToolSpec(name="search_customers", description="Find customers by name and/or the "
                     "last four digits of their phone number (any word of the name matches).",
                     parameters=_obj({"name": s, "phone_last4": s})),
            ToolSpec(name="retrieve", description="Stage 1: load the caller's records.",
                     parameters=_obj({"customer_id": s}, ["customer_id"])),
            ToolSpec(name="extract", description="Stage 2: record the call's intent, the "
                     "products it is about, the customer's sentiment and the rep's commitments.",
                     parameters=_obj({"intent": {"type": "string", "enum": list(INTENTS)},
                                      "products": strs,
                                      "sentiment": {"type": "string", "enum": list(SENTIMENTS)},
                                      "commitments": strs},
                                     ["intent", "products", "sentiment", "commitments"])),
            ToolSpec(name="rules", description="Stage 3: the business rules' outcome and "
                     "amount for the retrieved record and the extraction.",
                     parameters=_obj({"outcome": {"type": "string", "enum": list(OUTCOMES)},
                                      "amount": {"type": "number"}}, ["outcome", "amount"])),
            ToolSpec(name="crm_update", description="Stage 4: write the final CRM record "
                     "(irreversible).",
                     parameters=_obj({"customer_id": s, "intent": s, "outcome": s,
                                      "amount": {"type": "number"}, "follow_ups": strs},
                                     ["customer_id", "intent", "outcome", "amount",
                                      "follow_ups"]), irreversible=True),
        ]

    def execute(self, node: str, tool: str, args: dict[str, Any]) -> ToolResult:
        if tool in SECONDS and self.out["crm_update"] is not None:
            raise ToolError("the pipeline is complete: the CRM record is written")
        return call_tool_method(self, tool, args, SECONDS)

    def _t_search_customers(self, name: str = "", phone_last4: str = "") -> list[dict[str, Any]]:
        words = {w.lower() for w in str(name).split()}
        if not words and not phone_last4:
            raise ToolError("give a name, phone_last4 or both")
        hits = [c for c in self.customers.values()
                if (not words or words & set(c["name"].lower().split()))
                and (not phone_last4 or c["phone_last4"] == str(phone_last4))]
        return [{k: c[k] for k in ("customer_id", "name", "phone_last4")}
                for c in sorted(hits, key=lambda c: c["customer_id"])]

    def _t_retrieve(self, customer_id: str) -> dict[str, Any]:
        record = self.customers.get(customer_id)
        if record is None:
            raise ToolError(f"no customer {customer_id!r}")
        self.out["retrieve"] = customer_id
        self.retrieved = record
        return record

    def _t_extract(self, intent: str, products: list[str], sentiment: str,
                   commitments: list[str]) -> dict[str, Any]:
        ex = _check_extraction(intent, products, sentiment, commitments)
        self.out["extract"] = ex
        return ex

    def _t_rules(self, outcome: str, amount: float) -> dict[str, Any]:
        if self.out["retrieve"] is None or self.out["extract"] is None:
            raise ToolError("the rules stage acts on the retrieved record and the extraction: "
                            "run retrieve and extract first")
        if outcome not in OUTCOMES:
            raise ToolError(f"outcome must be one of {', '.join(OUTCOMES)}")
        self.out["rules"] = {"outcome": outcome, "amount": round(float(amount), 2)}
        return self.out["rules"]

    def _t_crm_update(self, customer_id: str, intent: str, outcome: str, amount: float,
                      follow_ups: list[str]) -> dict[str, Any]:
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
            return value == rule_outcome(self.cfg, self.retrieved, self.out["extract"])
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
        p = GenerateParams.model_validate(params)
        rng = random.Random(f"workflow-tasks:{seed}:{difficulty}")
        level = {"easy": 0, "medium": 1, "hard": 2}.get(difficulty, 1)
        tasks = []
        for i in range(n):
            call = _draw_call(rng, 1 + (level > 0 and rng.random() < 0.5), p.intents)
            namesakes = p.namesakes if p.namesakes is not None else \
                [0, rng.randint(0, 1), rng.randint(1, 3)][level]
            tasks.append({
                "id": f"gen-{i:04d}-{call.intent}",
                "instruction": "Process this support call through the pipeline.",
                "call": call.model_dump(),
                "customer": {"plan": rng.choice(sorted(PLANS)),
                             "tenure_months": rng.randint(1, 60)},
                "namesakes": namesakes,
                "small_talk": [0, rng.randint(0, 2), rng.randint(2, 5)][level],
                "distractors": [0, 0, rng.randint(1, 2)][level],
            })
        return tasks


def _draw_call(rng: random.Random, max_products: int,
               intents: list[str] | None = None) -> CallSpec:
    return CallSpec(
        intent=rng.choice(intents or list(INTENTS)),
        products=rng.sample(sorted(PRODUCTS), rng.randint(1, max_products)),
        sentiment=rng.choice(SENTIMENTS),
        commitments=sorted(rng.sample(COMMITMENTS, rng.randint(0, 2))))


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


def _pct(rate: float) -> str:
    return f"{rate * 100:g}"


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or [],
            "additionalProperties": False}
