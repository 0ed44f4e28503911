"""The business rules of the workflow world, written once: the text the agent reads and the
function that applies it, with the price list they refer to.

The world uses `rule_outcome` for ground truth (and to tell an error that only followed
faithfully from a wrong input), and the scripted agent uses it for its rules stage, so both
read the written policy the same way.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PRODUCTS = {"fiber": 60.0, "mobile": 35.0, "tv": 45.0, "landline": 20.0}  # base monthly price
PLANS = {"basic": 1.0, "plus": 1.2, "premium": 1.5}  # price multiplier
OUTCOMES = ("escalate", "refund", "credit", "none")

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


class Rules(BaseModel):
    """The numbers in the rules (part of the world's options; the agent is shown them)."""

    model_config = ConfigDict(extra="forbid")

    retention_tenure_months: int = Field(24, ge=0)
    cancel_credit_rate: float = Field(0.2, ge=0, le=1)
    outage_credit_rate: float = Field(0.1, ge=0, le=1)
    technician_credit_rate: float = Field(0.25, ge=0, le=1)


def policy_text(rules: Rules) -> str:
    """The rules as the agent reads them."""
    return POLICY.format(retention_tenure_months=rules.retention_tenure_months,
                         cancel_pct=_pct(rules.cancel_credit_rate),
                         outage_pct=_pct(rules.outage_credit_rate),
                         technician_pct=_pct(rules.technician_credit_rate))


def rule_outcome(rules: Rules, record: dict[str, Any] | None,
                 extraction: dict[str, Any] | None) -> dict[str, Any]:
    """The business rules as a function: the outcome and amount for a record and extraction."""
    if record is None or extraction is None:
        return {"outcome": "none", "amount": 0.0}
    prices = {p["code"]: p["monthly"] for p in record.get("products", [])}
    total = sum(prices.get(p, 0.0) for p in extraction.get("products", []))
    intent, sentiment = extraction.get("intent"), extraction.get("sentiment")
    if sentiment == "angry" and record.get("plan") == "premium":
        return {"outcome": "escalate", "amount": 0.0}
    if intent == "cancel":
        if record.get("tenure_months", 0) >= rules.retention_tenure_months:
            return {"outcome": "escalate", "amount": 0.0}
        return {"outcome": "credit", "amount": round(total * rules.cancel_credit_rate, 2)}
    if intent == "billing_dispute":
        return {"outcome": "refund", "amount": round(total, 2)}
    if intent == "outage":
        rate = rules.technician_credit_rate if "technician_visit" in extraction.get(
            "commitments", []) else rules.outage_credit_rate
        return {"outcome": "credit", "amount": round(total * rate, 2)}
    return {"outcome": "none", "amount": 0.0}


def crm_record(customer_id: str | None, extraction: dict[str, Any] | None,
               rules: dict[str, Any] | None) -> dict[str, Any]:
    """The CRM record the policy's last paragraph describes, from the stages' outputs."""
    ex, ru = extraction or {}, rules or {}
    return {"customer_id": customer_id, "intent": ex.get("intent"),
            "outcome": ru.get("outcome"), "amount": ru.get("amount"),
            "follow_ups": sorted(ex.get("commitments", []))}


def _pct(rate: float) -> str:
    return f"{rate * 100:g}"
