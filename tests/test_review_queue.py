"""A real reviewer at the checkpoints: an episode that needs an answer pauses durably, the
run goes on with the others and ends waiting for review; once answered, `--resume` goes on
from the pause with nothing run twice, whatever the answer; a deadline lets the fallback
answer; a paused episode is never scored."""

from __future__ import annotations

import time

import anyio
import pytest
import yaml

from tests.fake_openai import FakeOpenAI, finish, tool
from tests.helpers import RETAIL, run_source
from trialrun.episode import run_episode
from trialrun.errors import InfraError, NotFound
from trialrun.plan import ScenarioPlan
from trialrun.runner import RunOptions, run_episodes
from trialrun.scenarios.loader import load_scenario_source
from trialrun.trajectory import EndReason, EpisodeKey


def reviewed(seeds: int = 3, **human) -> str:
    doc = yaml.safe_load((RETAIL / "cancel_pending.yaml").read_text())
    doc["agent"] = {"type": "scripted:retail"}
    doc["checkpoints"] = {"policy": "before_irreversible", "on_deny": "abort",
                          "human": {"type": "reviewer", **human}}
    doc["seeds"], doc["trials"] = seeds, 1
    return yaml.safe_dump(doc)


def resume(store, run_id: str):
    return anyio.run(lambda: run_episodes(store, [], resume=run_id, options=RunOptions(),
                                          keep_results=True))


def test_a_run_pauses_for_review_and_goes_on_once_answered(store):
    first = run_source(store, reviewed())
    assert first.paused == 3 and all(r.end_reason == EndReason.paused for r in first.results)
    run_id = first.run_id
    assert store.get_run(run_id).status == "waiting for review"
    items = store.reviews(run_id, "pending")
    assert len(items) == 3 and all("cancel" in it.decision for it in items)
    assert {it.reason for it in items} == {"irreversible action"}
    paused = first.results[0]
    assert paused.success is None and paused.steps[-1].checkpoint.reviewed is False

    # One approved, one denied, one left waiting.
    store.answer_review(items[0].id, True, "ana", "looks right")
    store.answer_review(items[1].id, False, "ben", "not this one")
    with pytest.raises(NotFound, match="already answered"):
        store.answer_review(items[1].id, True, "eve")  # a second answer never wins
    second = resume(store, run_id)
    assert second.ran == 2 and second.paused == 0
    by_key = {str(r.key): r for r in second.results}
    ok, denied = by_key[items[0].episode_key], by_key[items[1].episode_key]
    assert ok.success and ok.steps[items[0].step].checkpoint.reviewer == "ana"
    assert denied.end_reason == EndReason.aborted and not denied.success
    # The replayed prefix is the paused one, step for step.
    before = next(r for r in first.results if str(r.key) == items[0].episode_key)
    assert [(s.decision, s.state_digest) for s in ok.steps[:items[0].step]] == \
           [(s.decision, s.state_digest) for s in before.steps[:items[0].step]]
    assert store.get_run(run_id).status == "waiting for review"
    assert len(store.episodes(run_id)) == 3  # each planned episode stored exactly once

    store.answer_review(items[2].id, True, "ana")
    third = resume(store, run_id)
    assert third.ran == 1 and store.get_run(run_id).status == "complete"
    assert sorted(e.end_reason for e in store.episodes(run_id)) == \
           ["aborted", "finished", "finished"]


def test_past_its_deadline_the_fallback_answers(store):
    first = run_source(store, reviewed(seeds=1, deadline_s=0.5, fallback="deny"))
    assert first.paused == 1
    time.sleep(0.6)
    [result] = resume(store, first.run_id).results
    assert result.end_reason == EndReason.aborted
    [item] = store.reviews(first.run_id)
    assert (item.status, item.approved, item.reviewer) == ("expired", False, "fallback")


def test_an_llm_episode_resumed_from_its_pause_asks_the_model_nothing_twice(store):
    doc = yaml.safe_load((RETAIL / "refund_in_window.yaml").read_text())
    with FakeOpenAI() as fake:
        fake.script("m", [tool("find_customer", {"email": "ana.ruiz@example.com"}),
                          tool("get_order", {"order_id": "O-1001"}),
                          tool("refund", {"order_id": "O-1001", "amount": 149.0}),
                          tool("reply", {"message": "We refunded 149.00 to your card."}),
                          finish()])
        doc["agent"] = {"type": "openai", "params": {
            "base_url": fake.base_url, "model": "m", "api_key_env": "NO_KEY_NEEDED",
            "node_map": {"find_customer": "verify_identity", "get_order": "lookup_order",
                         "refund": "resolve", "reply": "reply"}}}
        doc["checkpoints"] = {"policy": "before_irreversible", "human": {"type": "reviewer"}}
        doc["seeds"], doc["trials"] = 1, 1
        first = run_source(store, yaml.safe_dump(doc))
        assert first.paused == 1 and fake.requests == 3  # the refund waits for review
        [item] = store.reviews(first.run_id)
        store.answer_review(item.id, True, "ana")
        [result] = resume(store, first.run_id).results
        assert result.success
        assert fake.requests == 3 + 2  # reply and finish: nothing before the pause again


def test_a_resume_that_fails_keeps_the_pause_to_go_on_from(store):
    doc = yaml.safe_load((RETAIL / "refund_in_window.yaml").read_text())
    with FakeOpenAI() as fake:
        fake.script("m", [tool("find_customer", {"email": "ana.ruiz@example.com"}),
                          tool("get_order", {"order_id": "O-1001"}),
                          tool("refund", {"order_id": "O-1001", "amount": 149.0}),
                          tool("reply", {"message": "We refunded 149.00 to your card."}),
                          finish()])
        doc["agent"] = {"type": "openai", "params": {
            "base_url": fake.base_url, "model": "m", "api_key_env": "NO_KEY_NEEDED",
            "max_attempts": 1, "backoff_s": 0}}
        doc["checkpoints"] = {"policy": "before_irreversible", "human": {"type": "reviewer"}}
        doc["seeds"], doc["trials"] = 1, 1
        first = run_source(store, yaml.safe_dump(doc), retry_backoff_s=0.0)
        [item] = store.reviews(first.run_id)
        store.answer_review(item.id, True, "ana")
        fake.fail("m", "500")  # the endpoint is down when the run goes on
        failed = anyio.run(lambda: run_episodes(store, [], resume=first.run_id, options=
                                                RunOptions(retry_backoff_s=0.0)))
        assert failed.errors == 1
        [kept] = store.episodes(first.run_id)
        assert kept.end_reason == "paused"  # the pause is still there, nothing lost
        fake.always.clear()
        [result] = resume(store, first.run_id).results
    assert result.success and [s.decision.tool for s in result.steps][:3] == [
        "find_customer", "get_order", "refund"]


def test_a_reviewer_answers_only_within_a_run(store):
    loaded = load_scenario_source(reviewed(seeds=1), "inline.yaml")
    plan = ScenarioPlan.build(loaded)
    key = next(iter(plan.keys()))
    assert isinstance(key, EpisodeKey)
    with pytest.raises(InfraError, match="answers through a run's store"):
        anyio.run(lambda: run_episode(plan, key))


def test_reviewer_metrics_and_every_real_answer_in_the_feedback_export(store):
    import io
    import json

    from trialrun.analysis.reviewers import reviewer_stats
    from trialrun.feedback import export_feedback

    doc = yaml.safe_load(reviewed(seeds=4))
    doc["agent"] = {"type": "scripted:retail", "params": {"error_rates": {"resolve": 0.5}}}
    first = run_source(store, yaml.safe_dump(doc))
    items = store.reviews(first.run_id, "pending")
    # ana approves everything; ben denies everything.
    for i, it in enumerate(items):
        store.answer_review(it.id, i % 2 == 0, "ana" if i % 2 == 0 else "ben", f"note {i}")
    resume(store, first.run_id)
    stats = {r.reviewer: r for r in reviewer_stats(store, first.run_id)}
    assert set(stats) == {"ana", "ben"}
    for name, approves in (("ana", True), ("ben", False)):
        r = stats[name]
        assert r.answers == r.judged and r.approvals == (r.answers if approves else 0)
        # Agreement is the share of answers matching the world's verdict, recomputed here.
        truth = [s.checkpoint.decision_was_correct for e in store.episodes(first.run_id)
                 for s in store.load_episode(e.id).steps
                 if s.checkpoint and s.checkpoint.reviewer == name]
        assert r.agreement == sum(t == approves for t in truth) / len(truth)
        assert r.queue_wait_s is not None and r.queue_wait_s >= 0
    out = io.StringIO()
    assert export_feedback(store, first.run_id, out) == len(items)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert {x["reviewer"] for x in lines} == {"ana", "ben"}
    assert all(x["comment"].startswith("note ") and x["answered_at"] for x in lines)


def test_a_paused_episode_is_not_replayed_or_forked_but_says_how_to_go_on(store, tmp_path):
    from tests.test_cli import trialrun

    run = run_source(store, reviewed(1))
    [row] = store.episodes(run.run_id)
    for command in (["replay", row.id], ["fork", row.id]):
        out = trialrun(*command, "--db", store.url, cwd=tmp_path)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "paused, waiting for review" in out.stderr
        assert f"trialrun run --resume {run.run_id}" in out.stderr
