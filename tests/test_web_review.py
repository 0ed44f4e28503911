"""`trialrun serve`, the rest of issue 12, in a real headless browser (Debian's Chromium through
Playwright) where a person would use it: a deny that takes over with a corrected action (its
arguments checked against the tool's schema in the page) and the episode completing with that
action; the world's state and what an action would change; live progress of a running run;
a running server resuming answered runs itself (and never twice at once); labels that feed
the judge calibration and a failure marked as a regression case; second opinions and the
agreement between reviewers. No console errors on any page."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import anyio
import pytest
import yaml
from sqlalchemy import insert
from starlette.testclient import TestClient

from tests.helpers import RETAIL, run_source
from tests.test_web import Server, Tab, launch_browser, resume
from trialrun import store as st
from trialrun.store import EpisodeRow, Store
from trialrun.trajectory import EndReason
from trialrun.web.app import create_app

ANSWERED = "**/reviews?answered=*"


@pytest.fixture(scope="module")
def browser():
    yield from launch_browser()


def scenario(seeds: int, on_deny: str = "takeover", wrong: bool = True,
             reviewer: bool = True) -> str:
    """retail/cancel_pending with the scripted agent; `wrong`: it always cancels the wrong
    order (an irreversible mistake a person catches)."""
    doc = yaml.safe_load((RETAIL / "cancel_pending.yaml").read_text())
    doc["agent"] = {"type": "scripted:retail",
                    "params": {"error_rates": {"resolve": 1.0 if wrong else 0.0}}}
    doc["checkpoints"] = {"policy": "before_irreversible" if reviewer else "never",
                          "on_deny": on_deny, "human": {"type": "reviewer"}}
    doc["seeds"], doc["trials"] = seeds, 1
    return yaml.safe_dump(doc)


def stored_run(tmp_path: Path, text: str) -> tuple[str, Store, str]:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(url)
    out: list = []  # in a thread: Playwright's sync API runs an event loop in this one
    worker = threading.Thread(target=lambda: out.append(run_source(store, text)))
    worker.start()
    worker.join(120)
    return url, store, out[0].run_id


def in_thread(fn):
    """Run an async function to the end in a thread of its own (Playwright's sync API keeps
    an event loop in the test's thread)."""
    out: list = []
    worker = threading.Thread(target=lambda: out.append(anyio.run(fn)))
    worker.start()
    worker.join(120)
    return out[0]


def browser_post(page, url: str, **form: str):
    """A form POST from the browser's context (its cookies, the CSRF token among them)."""
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "trialrun_csrf")
    return page.request.post(url, form={"csrf": csrf, **form}, max_redirects=0)


def client_post(c: TestClient, path: str, **form: str):
    return c.post(path, data={"csrf": c.cookies["trialrun_csrf"], **form},
                  follow_redirects=False)


def no_errors(tab: Tab, allowed: tuple[str, ...] = ()) -> list[str]:
    """Console errors, less the resource errors of the refusals the test provoked."""
    return [e for e in tab.errors if not any(a in e for a in allowed)]


# --- take over ------------------------------------------------------------------------
def test_a_reviewer_takes_over_with_a_corrected_action_and_the_episode_completes_with_it(
        browser, tmp_path):
    url, store, run_id = stored_run(tmp_path, scenario(1))
    [item] = store.reviews(run_id, "pending")
    assert json.loads(item.decision)["args"] == {"order_id": "O5025"}  # the wrong order
    tab = Tab(browser.new_context())
    page = tab.page
    with Server(url) as srv:
        tab.goto(f"{srv.base}/reviews/{item.id}")
        # The agent's call would fail (no such order): nothing would change.
        assert "no change" in page.locator("#would-change").inner_text()
        page.fill("#reviewer", "ana")
        page.fill("#comment", "wrong order: the lamp is O-3001")
        page.check("#action-takeover")
        page.select_option("#tool", "cancel")
        page.fill("#args", '{"order_id": 3001}')  # a number: the schema wants a string
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.click("#deny")
        assert posted.value.status == 400
        errors = page.locator("#errors").inner_text()
        assert "order_id" in errors and "string" in errors
        assert store.reviews(run_id)[0].status == "pending"  # nothing applied
        assert page.input_value("#args") == '{"order_id": 3001}'  # kept for the fix
        assert page.is_checked("#action-takeover")
        page.fill("#args", '{"order_id": "O-3001"}')
        page.click("#deny")
        page.wait_for_url(ANSWERED)
        [answered] = store.reviews(run_id)
        assert (answered.approved, answered.action, answered.reviewer) == (False, "takeover",
                                                                           "ana")
        assert json.loads(answered.takeover)["args"] == {"order_id": "O-3001"}
        assert answered.answered_at and answered.comment.startswith("wrong order")

        resume(url, run_id)  # `trialrun run --resume` in another process
        [ep] = store.episodes(run_id)
        assert (ep.end_reason, ep.success) == ("finished", True)
        held = store.load_episode(ep.id).steps[item.step]
        assert held.decision.args == {"order_id": "O5025"}  # the agent's, as it decided
        assert held.checkpoint.action == "takeover" and held.checkpoint.reviewer == "ana"
        assert held.checkpoint.takeover.args == {"order_id": "O-3001"}  # the person's
        assert held.result.output == {"order_id": "O-3001", "status": "cancelled"}

        tab.goto(f"{srv.base}/episodes/{ep.id}")
        assert "took over with cancel(order_id='O-3001')" in \
            page.locator("#answers").inner_text()
        state = page.locator(f"#step-{item.step} td.state").inner_text()
        assert 'orders["O-3001"].status' in state and '"cancelled"' in state
        assert page.locator("#diverged").count() == 0  # the rebuilt states match the record
        tab.goto(f"{srv.base}/reviews/{item.id}")
        assert "takeover" in page.locator("#status").inner_text()
    assert no_errors(tab, ("400",)) == []


def test_a_takeover_unlike_the_worlds_own_runs_as_typed_and_replays_exactly(tmp_path):
    """The person's action, not the world's reference decision, takes effect; the record
    replays to the same states (the takeover is part of it)."""
    from trialrun.replay.exact import replay_episode
    from trialrun.runner import run_episodes

    url, store, run_id = stored_run(tmp_path, scenario(1))
    [item] = store.reviews(run_id)
    with TestClient(create_app(url)) as c:
        c.get(f"/reviews/{item.id}")
        r = client_post(c, f"/reviews/{item.id}/answer", verdict="deny", reviewer="ana",
                        action="takeover", tool="get_order", args='{"order_id": "O-3001"}')
        assert r.status_code == 303
    in_thread(lambda: run_episodes(store, [], resume=run_id))
    [ep] = store.episodes(run_id)
    held = store.load_episode(ep.id).steps[item.step]
    assert held.result.output["status"] == "pending"  # a read: the order was not cancelled
    # The agent goes on from what ran (a read), not from what it proposed: it tries its
    # cancel again, and that waits for a review of its own.
    assert ep.end_reason == "paused" and len(store.reviews(run_id)) == 2
    again = next(i for i in store.reviews(run_id) if i.id != item.id)
    with TestClient(create_app(url)) as c:
        c.get(f"/reviews/{again.id}")
        assert client_post(c, f"/reviews/{again.id}/answer", verdict="approve",
                           reviewer="ana").status_code == 303
    in_thread(lambda: run_episodes(store, [], resume=run_id))
    [ep] = store.episodes(run_id)
    assert ep.end_reason == "finished" and ep.success is False  # it cancelled the wrong one
    report, _ = in_thread(lambda: replay_episode(store, ep.id))
    assert report.identical, report.differences
    with TestClient(create_app(url)) as c:
        page = c.get(f"/episodes/{ep.id}").text
        assert 'id="diverged"' not in page
        assert "took over with <code" in page and "get_order(order_id=&#39;O-3001&#39;)" in page


def test_a_deny_offers_what_the_scenario_allows_and_each_choice_does_what_it_says(tmp_path):
    url, store, run_id = stored_run(tmp_path, scenario(2, on_deny="retry"))
    first, second = store.reviews(run_id)
    with TestClient(create_app(url)) as c:
        page = c.get(f"/reviews/{first.id}").text
        assert 'id="action-retry"' in page and 'id="action-abort"' in page
        assert 'id="action-takeover"' not in page  # on_deny: retry allows no takeover
        r = client_post(c, f"/reviews/{first.id}/answer", verdict="deny", reviewer="ana",
                        action="takeover", tool="cancel", args='{"order_id": "O-3001"}')
        assert r.status_code == 400 and "allows retry, abort" in r.text
        assert store.reviews(run_id, "pending") and len(store.reviews(run_id, "pending")) == 2
        assert client_post(c, f"/reviews/{first.id}/answer", verdict="deny", reviewer="ana",
                           action="abort").status_code == 303
        assert client_post(c, f"/reviews/{second.id}/answer", verdict="deny", reviewer="ana",
                           action="retry").status_code == 303
    from trialrun.runner import run_episodes

    in_thread(lambda: run_episodes(store, [], resume=run_id))
    eps = {e.key: e for e in store.episodes(run_id)}
    aborted, retried = eps[first.episode_key], eps[second.episode_key]
    assert aborted.end_reason == EndReason.aborted.value
    steps = store.load_episode(retried.id).steps
    assert steps[second.step].checkpoint.action == "retry"
    assert steps[second.step].result is None  # never ran; the agent decided again ...
    assert retried.end_reason == "paused"  # ... the same wrong cancel: reviewed again
    [again] = store.reviews(run_id, "pending")
    assert (again.episode_key, again.step) == (second.episode_key, second.step + 1)


# --- the world's state ----------------------------------------------------------------
def test_an_item_shows_the_worlds_state_and_what_the_action_would_change(browser, tmp_path):
    url, store, run_id = stored_run(tmp_path, scenario(1, on_deny="abort", wrong=False))
    [item] = store.reviews(run_id)
    tab = Tab(browser.new_context())
    page = tab.page
    with Server(url) as srv:
        tab.goto(f"{srv.base}/reviews/{item.id}")
        change = page.locator("#would-change li").all_inner_texts()
        assert change == ['~ orders["O-3001"].status: "pending" → "cancelled"']
        page.click("#state-before summary")
        before = json.loads(page.locator("#state-before pre").inner_text())
        assert before["orders"]["O-3001"]["status"] == "pending"
        ep = st.episode_by_key(store, run_id, item.episode_key)
        tab.goto(f"{srv.base}/episodes/{ep.id}")
        assert "verified" in page.locator("#step-0 td.state").inner_text()
        paused = page.locator(f"#step-{item.step} td.state").inner_text()
        assert paused.startswith("if approved:") and "cancelled" in paused
        for path in ["/reviewers", "/reviews?status=second", f"/runs/{run_id}"]:
            assert tab.goto(srv.base + path) == 200
    assert tab.errors == []


def test_state_text_is_escaped_and_sandboxed_worlds_say_why_there_is_none(tmp_path):
    doc = yaml.safe_load(scenario(1, wrong=False))
    doc["tasks"][0]["customer"]["name"] = "<img src=x onerror=alert(1)>"
    url, store, run_id = stored_run(tmp_path, yaml.safe_dump(doc))
    [item] = store.reviews(run_id)
    with TestClient(create_app(url)) as c:
        page = c.get(f"/reviews/{item.id}").text
        assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    from trialrun.runner import plan_of_run
    from trialrun.web.states import SANDBOXED, rebuild

    plan = plan_of_run(store, run_id).scenarios[doc["name"]]
    result = store.load_episode(store.episodes(run_id)[0].id)
    sandboxed = type("Boxed", (plan.world_cls,), {"uses_sandbox": True})
    plan.loaded.world_cls = sandboxed
    states = in_thread(lambda: rebuild(plan, result, [], set()))
    assert not states.available and states.reason == SANDBOXED


# --- live progress ----------------------------------------------------------------------
def add_episodes(store: Store, run_id: str, start: int, n: int, error: bool = False) -> None:
    rows = [dict(id=f"{run_id}-{i:016x}", run_id=run_id, key=f"s/t/{i}/0", scenario="s",
                 task="t", seed=i, trial=0, agent="a", end_reason="error" if error else
                 "finished", success=None if error else i % 2 == 0, n_steps=1,
                 outcome_grades="[]", metrics="{}") for i in range(start, start + n)]
    with store.engine.begin() as c:
        c.execute(insert(EpisodeRow.__table__), rows)


def test_a_running_runs_progress_updates_live_without_a_reload(browser, tmp_path):
    from playwright.sync_api import expect

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(url)
    run_id = store.create_run(["s"], {}, 10, {})
    tab = Tab(browser.new_context())
    page = tab.page
    with Server(url, poll_ms=250) as srv:
        tab.goto(f"{srv.base}/runs/{run_id}")
        assert page.locator("#done").inner_text() == "0"
        page.evaluate("window.notReloaded = true")
        add_episodes(store, run_id, 0, 3)
        add_episodes(store, run_id, 3, 1, error=True)
        expect(page.locator("#done")).to_have_text("4", timeout=10_000)
        assert page.locator("#errors-count").inner_text() == "1"
        assert page.evaluate("document.getElementById('progress-bar').value") == 4
        assert page.evaluate("window.notReloaded") is True  # updated in place
        assert page.locator("#live").inner_text() == "(updating live)"
        store.set_status(run_id, "complete")
        expect(page.locator("#run-status")).to_have_text("complete", timeout=10_000)
        assert page.locator("#live").inner_text() == ""  # the poll stopped
    assert tab.errors == []


# --- a running server resumes answered runs -----------------------------------------------
def test_serve_resumes_a_run_once_every_waiting_item_is_answered(tmp_path):
    url, store, run_id = stored_run(tmp_path, scenario(2, on_deny="abort", wrong=False))
    first, second = store.reviews(run_id)
    with Server(url, resume_answered=True, resume_interval_s=0.1) as srv:
        store.answer_review(first.id, True, "ana")
        time.sleep(0.5)  # one item still waits: the run stays where it is
        assert store.get_run(run_id).status == "waiting for review"
        assert srv.app.state.resumer.done == []
        store.answer_review(second.id, False, "ana")
        deadline = time.monotonic() + 60
        while not srv.app.state.resumer.done:
            assert time.monotonic() < deadline, "the server did not resume the run"
            time.sleep(0.1)
        time.sleep(0.5)  # a few more polls: nothing starts again
        [(done_id, summary)] = srv.app.state.resumer.done  # once
        assert store.get_run(run_id).status == "complete"
        assert done_id == run_id and summary.ran == 2
    reasons = sorted(e.end_reason for e in store.episodes(run_id))
    assert reasons == ["aborted", "finished"]
    # The reviewers page's ground truth, in one query, is what loading every episode gives.
    fast = st.review_verdicts(store, run_id)
    slow = {(run_id, str(ep.key), s.index): s.checkpoint.decision_was_correct
            for ep in map(store.load_episode, (e.id for e in store.episodes(run_id)))
            for s in ep.steps if s.checkpoint and s.checkpoint.decision_was_correct is not None}
    assert len(fast) == 2 and fast == slow


def test_a_run_is_resumed_by_one_process_at_a_time(tmp_path):
    """Two servers see the same answered run: the conditional status update lets one in; a
    run another process has claimed (a CLI `--resume`) is left alone."""
    from trialrun.web.resumer import Resumer

    url, store, run_id = stored_run(tmp_path, scenario(1, on_deny="abort", wrong=False))
    [item] = store.reviews(run_id)
    store.answer_review(item.id, True, "ana")
    assert st.claim_run(store, run_id, ("waiting for review",))  # another process has it
    one, two = Resumer(store), Resumer(Store(url))
    assert one.tick() == [] and two.tick() == []
    store.set_status(run_id, "waiting for review")  # it gave the run back
    started = one.tick() + two.tick()
    assert started == [run_id]
    one.close()
    two.close()
    [ep] = store.episodes(run_id)
    assert ep.end_reason == "finished" and store.get_run(run_id).status == "complete"


# --- labelling and regression cases -----------------------------------------------------
def test_labels_feed_the_golden_set_and_a_failure_becomes_a_regression_case(browser,
                                                                            tmp_path):
    from trialrun.graders.golden import load_golden, run_items
    from trialrun.scenarios.loader import load_targets

    url, store, run_id = stored_run(tmp_path, scenario(1, reviewer=False))
    [ep] = store.episodes(run_id)
    assert ep.success is False
    steps = store.load_episode(ep.id).steps
    reply = next(s.index for s in steps if s.decision.tool == "reply")
    regressions = tmp_path / "regressions"
    tab = Tab(browser.new_context())
    page = tab.page
    with Server(url, regressions=regressions) as srv:
        tab.goto(f"{srv.base}/episodes/{ep.id}")
        page.select_option("#label-item", str(reply))
        page.fill("#criterion", "honest_reply")
        page.fill("#explanation", "says cancelled; nothing was")
        page.fill("#labeller", "ana")
        page.click("#label-fail")
        page.wait_for_url(f"**/episodes/{ep.id}#labels")
        assert "honest_reply" in page.locator("#label-list").inner_text()
        # What the report's PPI reads, and a golden file for `trialrun calibrate`:
        item = f"{ep.id}:{reply}"
        assert store.golden_labels("honest_reply", run_id) == {item: False}
        r = page.request.get(f"{srv.base}/runs/{run_id}/golden?criterion=honest_reply")
        assert r.status == 200
        golden_file = tmp_path / "golden.yaml"
        golden_file.write_bytes(r.body())
        gold = load_golden(golden_file)
        assert gold.judge == "honest_reply" and len(gold.examples) == 1
        ex = gold.examples[0]
        assert (ex.id, ex.label, ex.explanation) == (item, "fail", "says cancelled; nothing was")
        [live] = [x for x in run_items(store, run_id, {"reply"}) if x.item == item]
        assert ex.context == live.context  # exactly what the judge sees

        page.fill("#marker", "ana")
        page.click("#mark")
        page.wait_for_url(f"**/episodes/{ep.id}#regression")
        path = Path(page.locator("#case-path").inner_text())
        assert path.parent == regressions and path.exists()
        assert tab.goto(f"{srv.base}/runs/{run_id}") == 200
        assert path.name in page.locator("#marks").inner_text()
        assert "honest_reply" in page.locator("#golden-links").inner_text()
    [case] = load_targets([str(regressions)])  # what `trialrun run regressions/` loads
    assert case.scenario.provenance.episodes[0].episode == ep.id
    out: list = []
    worker = threading.Thread(target=lambda: out.append(
        run_source(Store(f"sqlite:///{tmp_path / 'ci.db'}"), case.source)))
    worker.start()
    worker.join(120)
    [again] = out
    assert again.results[0].success is False  # it fails until the agent is fixed
    assert st.regression_mark(store, ep.id).marked_by == "ana"
    assert tab.errors == []


# --- second opinions -------------------------------------------------------------------
def test_second_opinions_measure_agreement_between_reviewers(browser, tmp_path):
    from trialrun.analysis.reviewers import agreement_text, reviewer_agreement

    url, store, run_id = stored_run(tmp_path, scenario(4, on_deny="abort", wrong=False))
    items = store.reviews(run_id)
    firsts = [True, True, True, False]
    for it, ok in zip(items, firsts, strict=True):
        store.answer_review(it.id, ok, "ana")
    tab = Tab(browser.new_context())
    page = tab.page
    seconds = [True, True, False, False]  # agrees on 3 of 4
    with Server(url, second_opinions=1.0) as srv:
        tab.goto(f"{srv.base}/reviews?status=second")
        assert page.locator("#queue a.item").count() == 4
        for n, ok in enumerate(seconds):
            page.locator("#queue a.item").first.click()
            assert page.locator("#second-form").count() == 1
            assert "by ana" not in page.content()  # blind to the first answer
            page.fill("#reviewer", "ben")
            page.evaluate("document.activeElement.blur()")
            page.keyboard.press("a" if ok else "d")
            page.wait_for_url("**/reviews?status=second")
            left = page.locator("#queue a.item").count()
            assert left == 3 - n
        assert page.locator("#empty").inner_text() == "Nothing waits for a second opinion."
        tab.goto(f"{srv.base}/reviewers")
        assert page.locator("#agreement-pairs").inner_text() == "4"
        assert page.locator("#agreement-rate").inner_text() == "75%"
        assert page.locator("#kappa").inner_text() == "0.50"
        second = f"{srv.base}/reviews/{items[0].id}/second"
        assert browser_post(page, second, verdict="deny", reviewer="ana").status == 409
        assert browser_post(page, second, verdict="deny", reviewer="cy").status == 409
    # Never applied: the items keep their first answers.
    assert [i.approved for i in store.reviews(run_id)] == firsts
    a = reviewer_agreement(store, run_id)
    assert (a.pairs, a.agree, a.first_approve_second_deny) == (4, 3, 1)
    assert "75% [" in agreement_text(store, run_id) and "kappa 0.50" in agreement_text(store)
    assert tab.errors == []


def test_agreement_matches_cohens_worked_example(tmp_path):
    """[[40, 10], [5, 45]] -> kappa 0.7 (Cohen 1960), 85% agreement."""
    from trialrun.analysis.reviewers import reviewer_agreement

    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    run_id = store.create_run([], {}, 0, {})
    cells = [(True, True)] * 40 + [(True, False)] * 10 + [(False, True)] * 5 \
        + [(False, False)] * 45
    for n, (a, b) in enumerate(cells):
        item = store.add_review(run_id, f"e{n}", 0, '{"kind":"finish","node":"end"}', "", None)
        store.answer_review(item.id, a, "ana")
        st.add_second_opinion(store, st.get_review(store, item.id), b, "ben")
    r = reviewer_agreement(store, run_id)
    assert r.pairs == 100 and r.rate == pytest.approx(0.85)
    assert r.kappa == pytest.approx(0.7)
    assert r.lo == pytest.approx(0.7672, abs=1e-3) and r.hi == pytest.approx(0.9069, abs=1e-3)


# --- PostgreSQL ------------------------------------------------------------------------
@pytest.fixture
def pg_url():
    """A fresh database on the test PostgreSQL server (scripts/setup-postgres.sh)."""
    import os
    import uuid

    from sqlalchemy import create_engine, text

    url_file = Path(os.environ.get("TRIALRUN_PG_DIR", "/tmp/trialrun-pg")) / "url"
    if not url_file.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("no PostgreSQL on CI: .ci/run must start scripts/setup-postgres.sh")
        pytest.skip("no PostgreSQL server (run scripts/setup-postgres.sh)")
    server = url_file.read_text().strip()
    name = f"trialrun_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_the_review_pages_and_their_records_work_on_postgresql(pg_url):
    from trialrun.analysis.reviewers import reviewer_agreement
    from trialrun.runner import run_episodes

    store = Store(pg_url)
    run_id = in_thread(lambda: run_source_async(store, scenario(2, wrong=False)))
    first, second = store.reviews(run_id)
    with TestClient(create_app(pg_url, second_opinions=1.0)) as c:
        page = c.get(f"/reviews/{first.id}").text
        assert 'orders[&#34;O-3001&#34;].status' in page  # the state diff
        assert client_post(c, f"/reviews/{first.id}/answer", verdict="deny", reviewer="ana",
                           action="takeover", tool="cancel",
                           args='{"order_id": "O-3001"}').status_code == 303
        assert client_post(c, f"/reviews/{second.id}/answer", verdict="approve",
                           reviewer="ana").status_code == 303
        assert client_post(c, f"/reviews/{first.id}/second", verdict="deny",
                           reviewer="ben").status_code == 303
        assert c.get(f"/runs/{run_id}/progress").json()["paused"] == 2
        in_thread(lambda: run_episodes(store, [], resume=run_id))
        ep = store.episodes(run_id)[0]
        assert client_post(c, f"/episodes/{ep.id}/label", verdict="pass", reviewer="ana",
                           criterion="polite", item="outcome").status_code == 303
        assert store.golden_labels("polite", run_id) == {f"{ep.id}:outcome": True}
        assert c.get("/reviewers").status_code == 200
        assert c.get(f"/episodes/{ep.id}").status_code == 200
    assert reviewer_agreement(store, run_id).pairs == 1
    assert len(st.review_verdicts(store, run_id)) == 2
    assert st.claim_run(store, run_id, ("complete",)) and \
        not st.claim_run(store, run_id, ("complete",))


async def run_source_async(store: Store, text: str) -> str:
    from trialrun.runner import run_episodes
    from trialrun.scenarios.loader import load_scenario_source

    summary = await run_episodes(store, [load_scenario_source(text, "inline.yaml")])
    return summary.run_id


def test_a_state_diff_names_added_removed_and_changed_paths():
    from trialrun.state_diff import diff_states

    before = {"orders": {"O-1": {"status": "pending", "items": [1, 2]}}, "log": ["a"],
              "gone": 1, "n": 1}
    after = {"orders": {"O-1": {"status": "cancelled", "items": [1]}}, "log": ["a", "b"],
             "n": 1.5, "new key": {"x": True}}
    got = {(c.op, c.path, c.before, c.after) for c in diff_states(before, after).changes}
    assert got == {("changed", 'orders["O-1"].status', '"pending"', '"cancelled"'),
                   ("removed", 'orders["O-1"].items[1]', "2", None),
                   ("added", "log[1]", None, '"b"'), ("removed", "gone", "1", None),
                   ("changed", "n", "1", "1.5"),
                   ("added", '["new key"]', None, '{"x":true}')}
    assert diff_states(before, before).empty
    many = diff_states({}, {f"k{i}": i for i in range(250)}, limit=200)
    assert len(many.changes) == 200 and many.more == 50


def test_trialrun_review_deny_takes_over_and_review_stats_reports_reviewer_agreement(
        tmp_path):
    import os
    import subprocess

    from tests.test_web import TRIALRUN

    url, store, run_id = stored_run(tmp_path, scenario(1))
    [item] = store.reviews(run_id)
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}

    def trialrun(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(TRIALRUN), *argv, "--db", url], capture_output=True,
                              text=True, timeout=120, env=env)

    bad = trialrun("review", "deny", item.id, "--by", "ana", "--tool", "cancel",
                   "--args", '{"order_id": 3001}')
    assert bad.returncode == 2 and "order_id" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert store.reviews(run_id)[0].status == "pending"
    ok = trialrun("review", "deny", item.id, "--by", "ana", "--tool", "cancel",
                  "--args", '{"order_id": "O-3001"}')
    assert ok.returncode == 0, ok.stderr
    answered = store.reviews(run_id)[0]
    assert answered.action == "takeover" and json.loads(answered.takeover)["tool"] == "cancel"
    st.add_second_opinion(store, answered, True, "ben")
    stats = trialrun("review", "stats", run_id)
    assert "agreement between reviewers: 0% [" in stats.stdout, stats.stdout
    assert "of 1 item(s) with a second opinion" in stats.stdout
