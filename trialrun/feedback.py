"""Every human approve/deny (and every answer to ask_human), with its context, as JSONL.

Each line is one human judgement: the task, the trajectory so far, the decision under review,
the human's answer, and the world's ground truth, in a shape ready for fine-tuning or for
training a reward model (`label`: 1 approve, 0 deny). A real reviewer's answer (the review
queue) adds its comment and when it was asked and answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from trialrun.store import Store


def feedback_records(store: Store, run_id: str) -> Iterator[dict[str, Any]]:
    run = store.get_run(run_id)
    for e in store.episodes(run.id):
        if e.end_reason in ("error", "paused"):
            continue
        ep = store.load_episode(e.id)
        history: list[dict[str, Any]] = []
        for st in ep.steps:
            cp = st.checkpoint
            asked = st.decision.kind == "ask_human"
            if (cp and cp.reviewed) or asked:
                yield {
                    "run_id": run.id, "episode_id": e.id, "scenario": e.scenario,
                    "task": e.task, "seed": e.seed, "trial": e.trial, "step": st.index,
                    "node": st.node, "type": "ask_human" if asked else "checkpoint",
                    "policy": cp.policy if cp else None,
                    "history": list(history),
                    "decision": st.decision.model_dump(mode="json", exclude_none=True),
                    "label": None if asked else int(bool(cp.approved)),
                    "human_answer": (st.result.output if asked and st.result else
                                     ("approve" if cp.approved else "deny")),
                    "reviewer": cp.reviewer if cp else "simulated",
                    "seconds": cp.seconds if cp else None,
                    "decision_correct": (cp.decision_was_correct if cp else st.passed),
                    "help_needed": st.help_needed,
                    "episode_success": e.success,
                    **_queue_item(store, run.id, e.key, st.index),
                }
            history.append({"node": st.node, "decision": st.decision.label(),
                            "ok": None if st.result is None else st.result.ok})


def export_feedback(store: Store, run_id: str, out) -> int:
    n = 0
    for rec in feedback_records(store, run_id):
        out.write(json.dumps(rec) + "\n")
        n += 1
    return n


def _queue_item(store: Store, run_id: str, key: str, step: int) -> dict[str, Any]:
    """A real reviewer's answer: the comment and when (nothing for simulated humans)."""
    item = store.review_item(run_id, key, step)
    if item is None or item.status == "pending":
        return {}
    return {"comment": item.comment, "answered_at": item.answered_at,
            "asked_at": item.created_at, "expired": item.status == "expired",
            "deny_action": item.action or None,
            "takeover": json.loads(item.takeover) if item.takeover else None}
