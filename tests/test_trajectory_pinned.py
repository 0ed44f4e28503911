"""Trajectories are pinned: the same scenario, seed and decisions give the same record.

The digests below were computed from `EpisodeResult.model_dump_json()` (wall-clock times
zeroed: they are measurements, not behaviour) by the episode loop before its hot path was
made cheaper. Any change to what an episode records — a step's decision, result, grades,
digest, sim time, checkpoint events, the outcome grades — changes a digest here.
"""

from __future__ import annotations

import hashlib
import json

import anyio
import pytest

from trialrun.episode import run_episode
from trialrun.plan import ScenarioPlan
from trialrun.scenarios.loader import LIBRARY, load_scenario
from trialrun.trajectory import EpisodeResult

# scenario file | episode key -> sha256 (first 16 hex digits) of the canonical record.
PINNED = {
    'calendar/escalation_mix.yaml|calendar/escalation-mix/ambiguous-cancel/s0/t0':
        '032ee63145244cf0',
    'calendar/escalation_mix.yaml|calendar/escalation-mix/ambiguous-cancel/s1/t0':
        'd8f5d539ab05780e',
    'calendar/escalation_mix.yaml|calendar/escalation-mix/ambiguous-cancel/s2/t0':
        '597bd59457d1cd46',
    'calendar/escalation_mix.yaml|calendar/escalation-mix/clear-move/s0/t0':
        '6fd807ccf7e93aa6',
    'calendar/escalation_mix.yaml|calendar/escalation-mix/clear-move/s1/t0':
        '15356de67bc83b84',
    'calendar/escalation_mix.yaml|calendar/escalation-mix/clear-move/s2/t0':
        'bf41fb6c70e45110',
    'retail/ambiguous_refund.yaml|retail/ambiguous-refund/which-shoes/s0/t0':
        '4f4a15bc0f2cb567',
    'retail/ambiguous_refund.yaml|retail/ambiguous-refund/which-shoes/s0/t1':
        '9f642583310b55e2',
    'retail/ambiguous_refund.yaml|retail/ambiguous-refund/which-shoes/s1/t0':
        'ce1e68226dfb63a5',
    'retail/ambiguous_refund.yaml|retail/ambiguous-refund/which-shoes/s1/t1':
        '54e27968dd1be220',
    'retail/ambiguous_refund.yaml|retail/ambiguous-refund/which-shoes/s2/t0':
        'f23b8912b81d8cf7',
    'retail/ambiguous_refund.yaml|retail/ambiguous-refund/which-shoes/s2/t1':
        '7a6b959871923edd',
    'retail/clear_always_ask.yaml|retail/clear-always-ask/bottle/s0/t0':
        '8a39a4ffead9168a',
    'retail/clear_always_ask.yaml|retail/clear-always-ask/bottle/s0/t1':
        '846e4ff0b6dc8e95',
    'retail/clear_always_ask.yaml|retail/clear-always-ask/bottle/s1/t0':
        '03e9e03f633294f2',
    'retail/clear_always_ask.yaml|retail/clear-always-ask/bottle/s1/t1':
        '1f92dbca6207ce6d',
    'retail/clear_always_ask.yaml|retail/clear-always-ask/bottle/s2/t0':
        'd261ac7f5525629d',
    'retail/clear_always_ask.yaml|retail/clear-always-ask/bottle/s2/t1':
        '0081ae525d3809d6',
    'retail/exchange_price_differs.yaml|retail/exchange-price-differs/upgrade-shoes/s0/t0':
        '1218c6a9f0af3842',
    'retail/exchange_price_differs.yaml|retail/exchange-price-differs/upgrade-shoes/s0/t1':
        '00c7c0480dc0aef5',
    'retail/exchange_price_differs.yaml|retail/exchange-price-differs/upgrade-shoes/s1/t0':
        '57b801e6c8923791',
    'retail/exchange_price_differs.yaml|retail/exchange-price-differs/upgrade-shoes/s1/t1':
        '80482267a6329061',
    'retail/exchange_price_differs.yaml|retail/exchange-price-differs/upgrade-shoes/s2/t0':
        '42bef915a20c0f41',
    'retail/exchange_price_differs.yaml|retail/exchange-price-differs/upgrade-shoes/s2/t1':
        '7574f111de350b31',
    'retail/known_error_rates.yaml|retail/known-error-rates/refund-mat/s0/t0':
        '5ba3846dae679b99',
    'retail/known_error_rates.yaml|retail/known-error-rates/refund-mat/s1/t0':
        '44fe1b7b82dea6d9',
    'retail/known_error_rates.yaml|retail/known-error-rates/refund-mat/s2/t0':
        'ff969e806fbab5de',
    'retail/known_error_rates.yaml|retail/known-error-rates/refund-mat/s3/t0':
        '3901884225325e28',
    'retail/known_error_rates.yaml|retail/known-error-rates/refund-mat/s4/t0':
        'f97f32e147cf2e9d',
    'retail/known_error_rates.yaml|retail/known-error-rates/refund-mat/s5/t0':
        'e59cdbcac488f2a3',
    'vending/competent_30.yaml|vending/competent-30/default/s0/t0':
        '28c54b0bc5438f89',
    'vending/competent_30.yaml|vending/competent-30/default/s1/t0':
        '73c6c4c86ead670c',
    'vending/competent_30.yaml|vending/competent-30/default/s2/t0':
        'd82ba9e35a48fc17',
    'vending/competent_30.yaml|vending/competent-30/default/s3/t0':
        'a382720374a0f22a',
    'vending/competent_30.yaml|vending/competent-30/default/s4/t0':
        '4b93aede78dedbdd',
    'workflow/double_charge_refund.yaml|workflow/double-charge-refund/mobile-charged-twice/s0/t0':
        'c363021470b500bd',
    'workflow/double_charge_refund.yaml|workflow/double-charge-refund/mobile-charged-twice/s1/t0':
        '9ee1d9943ba51f07',
    'workflow/double_charge_refund.yaml|workflow/double-charge-refund/mobile-charged-twice/s2/t0':
        '93907bbe05bead68',
    'workflow/namesake_callers.yaml|workflow/namesake-callers/three-namesakes/s0/t0':
        '20da5bc79c55e9f1',
    'workflow/namesake_callers.yaml|workflow/namesake-callers/three-namesakes/s0/t1':
        'c4d3f5b951fdeb67',
    'workflow/namesake_callers.yaml|workflow/namesake-callers/three-namesakes/s1/t0':
        '4bc22faefd9f3c90',
    'workflow/namesake_callers.yaml|workflow/namesake-callers/three-namesakes/s1/t1':
        '7324f137c28ff290',
    'workflow/namesake_callers.yaml|workflow/namesake-callers/three-namesakes/s2/t0':
        '4aef07bc5c333664',
    'workflow/namesake_callers.yaml|workflow/namesake-callers/three-namesakes/s2/t1':
        '81f88354382d25a9',
    'workflow/stage_errors_compound.yaml|workflow/stage-errors-compound/gen-0000-tech_support/s0/t0':
        '838848c3f44562dd',
    'workflow/stage_errors_compound.yaml|workflow/stage-errors-compound/gen-0001-outage/s0/t0':
        'aa9667540a11e9e1',
    'workflow/stage_errors_compound.yaml|workflow/stage-errors-compound/gen-0002-cancel/s0/t0':
        '54644dad74f03996',
    'workflow/stage_errors_compound.yaml|workflow/stage-errors-compound/gen-0003-outage/s0/t0':
        '6705583557ae31aa',
    'workflow/stage_errors_compound.yaml|workflow/stage-errors-compound/gen-0004-tech_support/s0/t0':
        '4891d411a6a3428f',
    'workflow/stage_errors_compound.yaml|workflow/stage-errors-compound/gen-0005-billing_dispute/s0/t0':
        'a7144d3680e19e3c',
}

SCENARIOS = sorted({k.split("|")[0] for k in PINNED})
PER_SCENARIO = 6


def canonical(r: EpisodeResult) -> str:
    d = json.loads(r.model_dump_json())
    d["wall_ms"] = 0
    for s in d["steps"]:
        s["wall_us"] = 0
    return json.dumps(d, sort_keys=True)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_episode_records_are_unchanged(scenario: str) -> None:
    plan = ScenarioPlan.build(load_scenario(LIBRARY / scenario))

    async def run() -> dict[str, str]:
        out = {}
        for i, key in enumerate(plan.keys()):
            if i >= PER_SCENARIO:
                break
            r = await run_episode(plan, key)
            out[f"{scenario}|{key}"] = hashlib.sha256(canonical(r).encode()).hexdigest()[:16]
        return out

    got = anyio.run(run)
    want = {k: v for k, v in PINNED.items() if k.startswith(scenario + "|")}
    assert got == want
