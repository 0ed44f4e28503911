"""Web app page times on a large stored run (`trialrun serve`).

    python bench/bench_web.py [--episodes 20000] [--repeats 20]

Stores a run of --episodes episodes (rows inserted in one transaction, four steps for a few
of them) and a queue of 200 review items, then requests each page through the ASGI app in
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
    print(f"stored {args.episodes} episodes in {time.perf_counter() - t0:.1f} s")
    item = store.reviews(run_id, "pending")[0].id
    pages = {
        "runs list": "/runs",
        "run page 1": f"/runs/{run_id}",
        "run page 300": f"/runs/{run_id}?page=300",
        "run filtered": f"/runs/{run_id}?scenario=retail/s3&success=no&page=5",
        "episode": f"/episodes/{episode_id}",
        "review queue": "/reviews",
        "review item": f"/reviews/{item}",
    }
    with TestClient(create_app(url)) as c:
        print(f"{'page':<14} {'median ms':>10} {'max ms':>8}")
        for name, path in pages.items():
            assert c.get(path).status_code == 200, path  # warm: templates compiled
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                c.get(path)
                times.append(1000 * (time.perf_counter() - t))
            print(f"{name:<14} {statistics.median(times):>10.1f} {max(times):>8.1f}")


if __name__ == "__main__":
    main()
