"""Decisive-error attribution by counterfactual replay (Who&When, arXiv 2505.00212).

For a failed episode, the *first* error is the earliest step a grader marks wrong; the
*decisive* error is the earliest step whose correction turns the failure into a success.
Each candidate step k is tested by replaying the recorded decisions up to k, replacing the
decision at k with the world's reference decision, and letting the same agent (seeded as in
the recording) go on from there. A simulator with ground truth can do this exactly, which is why
trialrun can localise failures far better than judges reading transcripts.
"""

from __future__ import annotations

from pydantic import BaseModel

from trialrun.episode import run_episode
from trialrun.humans import RecordedHuman
from trialrun.plan import ScenarioPlan
from trialrun.replay.exact import RecordedAgent, recorded_answers
from trialrun.replay.rerun import plan_to_rerun
from trialrun.store import Store


class Attribution(BaseModel):
    episode_id: str
    first_error_step: int | None
    first_error_node: str | None
    decisive_step: int | None  # None: no single correction saves the episode
    decisive_node: str | None
    tried: int


async def attribute_episode(store: Store, plan: ScenarioPlan, episode_id: str) -> Attribution:
    original = store.load_episode(episode_id)
    failed = [st for st in original.steps if st.passed is False]
    first = original.first_error
    answers = recorded_answers(original)
    decisive = None
    tried = 0
    for st in failed:
        k = st.index
        tried += 1
        prefix = [s.decision for s in original.steps[:k]]
        # The same agent, seeded as before, adopts the prefix so that past the corrected
        # step it makes the choices it would have made: only step k changes.
        agent = RecordedAgent(prefix, then=plan.new_agent())
        n_prefix_reviews = sum(1 for s in original.steps[:k]
                               if s.checkpoint and s.checkpoint.reviewed)
        human = RecordedHuman(answers[:n_prefix_reviews],
                              then=plan.new_human(original.key, salt=f"human-cf:{k}"))
        result = await run_episode(plan, original.key, agent=agent, human=human, correct_at=k)
        if result.success:
            decisive = st
            break
    return Attribution(
        episode_id=episode_id, first_error_step=first.index if first else None,
        first_error_node=first.node if first else None,
        decisive_step=decisive.index if decisive else None,
        decisive_node=decisive.node if decisive else None, tried=tried)


async def attribute_run(store: Store, run_id: str, limit: int | None = None,
                        on_episode=None) -> list[Attribution]:
    """Attribute the failed episodes of a run (up to `limit`) and store the results."""
    plans = plan_to_rerun(store, run_id, "attributed by counterfactual replay").scenarios
    failed = [e for e in store.episodes(run_id) if e.success is False]
    out = []
    for e in failed[:limit]:
        att = await attribute_episode(store, plans[e.scenario], e.id)
        store.save_attribution(run_id, att.model_dump())
        out.append(att)
        if on_episode:
            on_episode(att)
    return out
