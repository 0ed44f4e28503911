"""The stored record is enough to replay an episode bit for bit."""

from __future__ import annotations

import anyio

from tests.helpers import RETAIL, run_scenarios
from trialrun.replay.exact import replay_episode


def test_every_stored_episode_replays_identically(store):
    # Checkpoints with a simulated human, denials with retries, ambiguity and asks: all of
    # it must come back from the record alone.
    run = run_scenarios(store, [RETAIL / "refund_in_window.yaml",
                                RETAIL / "ambiguous_refund.yaml",
                                RETAIL / "ambiguous_never_ask.yaml"], seeds=8)
    episodes = store.episodes(run.run_id)
    assert any(e.reviews for e in episodes) and any(e.asks for e in episodes)
    assert any(e.success is False for e in episodes)
    for e in episodes:
        report, replayed = anyio.run(replay_episode, store, e.id)
        assert report.identical, (e.key, report.differences)
        assert replayed.success == e.success


def test_replay_detects_a_changed_world(store, monkeypatch):
    run = run_scenarios(store, [RETAIL / "refund_in_window.yaml"], seeds=1, trials=1)
    (e,) = store.episodes(run.run_id)
    from trialrun.sandbox.worlds import retail

    # A world whose refunds now round differently: the replay must notice.
    orig = retail.RetailWorld.refund

    def changed(self, order_id, amount):
        return orig(self, order_id, round(float(amount) - 1, 2))

    monkeypatch.setattr(retail.RetailWorld, "refund", changed)
    report, _ = anyio.run(replay_episode, store, e.id)
    assert not report.identical
    assert any(d.what == "state digest" for d in report.differences)
