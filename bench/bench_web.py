"""Web app page times on a large stored run (`trialrun serve`).

    python bench/bench_web.py [--episodes 20000] [--repeats 20]

Stores a run of --episodes episodes (rows inserted in one transaction, four steps for a few
of them) and a queue of 200 review items (half answered, a quarter of those with a second
opinion), then requests each page through the ASGI app in
process (Starlette's TestClient: no socket, so the figures are the app's own cost: queries,
templates, middleware) and prints the median and the worst time per page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from tests.test_web import big_run  # noqa: E402
from trialrun import store as st  # noqa: E402
from trialrun.store import StepRow, Store  # noqa: E402
from trialrun.web.app import create_app  # noqa: E402


def build(store: Store, n: int) -> tuple[str, str]:
    run_id = big_run(store, n)  # the test's run: n episodes, failed every fifth
    ids = [r.id for r in st.episode_page(store, run_id, 200)[0]]
    decision = '{"kind":"tool_call","node":"resolve","tool":"cancel","args":{"order_id":"O-1"}}'
    steps = [dict(episode_id=ep, idx=k, node="resolve", kind="tool_call", tool="cancel",
                  decision=decision, result='{"ok":true,"output":{"status":"cancelled"}}',
                  grades='[{"grader":"world","passed":true}]')
             for ep in ids for k in range(4)]
    with store.engine.begin() as c:
        c.execute(insert(StepRow.__table__), steps)
    for ep in ids:
        store.add_review(run_id, store.get_episode(ep).key, 3, decision, "irreversible action",
                         None)
    return run_id, ids[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    store = Store(url)
    t0 = time.perf_counter()
    run_id, episode_id = build(store, args.episodes)
    print(f"stored {args.episodes} episodes in {time.perf_counter() - t0:.1f} s", flush=True)
    pending = store.reviews(run_id, "pending")
    item = pending[0].id
    for n, it in enumerate(pending[100:]):  # half the queue answered, some with a 2nd opinion
        store.answer_review(it.id, n % 3 != 0, "ana")
        if n % 4 == 0:
            st.add_second_opinion(store, st.get_review(store, it.id), n % 5 != 0, "ben")
    pages = {
        "runs list": "/runs",
        "run page 1": f"/runs/{run_id}",
        "run page 300": f"/runs/{run_id}?page=300",
        "run filtered": f"/runs/{run_id}?scenario=retail/s3&success=no&page=5",
        "episode": f"/episodes/{episode_id}",
        "review queue": "/reviews",
        "review item": f"/reviews/{item}",
        "progress json": f"/runs/{run_id}/progress",
        "second queue": "/reviews?status=second",
        "reviewers": "/reviewers",
        "reviewers run": f"/reviewers?run={run_id}",
    }
    with TestClient(create_app(url)) as c:
        print(f"{'page':<14} {'median ms':>10} {'max ms':>8}")
        c.cookies.set("trialrun_reviewer", "cy")
        for name, path in pages.items():
            assert c.get(path).status_code == 200, path  # warm: templates compiled
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                c.get(path)
                times.append(1000 * (time.perf_counter() - t))
            print(f"{name:<14} {statistics.median(times):>10.1f} {max(times):>8.1f}")
        # A real episode's page with its states rebuilt by replay: the first view replays
        # (the cache cleared each time), later views are cached.
        real = real_episode(store)
        for name, clear in (("episode+state", True), ("  (cached)", False)):
            times = []
            for _ in range(args.repeats):
                if clear:
                    c.app.state.states.states.clear()
                t = time.perf_counter()
                assert "state changes" in c.get(f"/episodes/{real}").text
                times.append(1000 * (time.perf_counter() - t))
            print(f"{name:<14} {statistics.median(times):>10.1f} {max(times):>8.1f}")


def real_episode(store: Store) -> str:
    """A retail episode run for real (its scenario stored with its run): the id of one."""
    import yaml

    from tests.helpers import RETAIL, run_source

    doc = yaml.safe_load((RETAIL / "cancel_pending.yaml").read_text())
    doc["seeds"], doc["trials"] = 1, 1
    run = run_source(store, yaml.safe_dump(doc))
    return store.episodes(run.run_id)[0].id


if __name__ == "__main__":
    main()
