"""`trialrun serve`: a real reviewer approves or denies paused decisions in a real headless
browser (Debian's Chromium through Playwright, no browser download) and `run --resume` in a
new process goes on from each pause; an item answered in two tabs is applied once; no page
logs a console error; a forged cross-site POST is refused; a non-loopback bind needs a
token; a 20,000-episode run page is served in well under a second."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn
import yaml
from sqlalchemy import insert
from starlette.testclient import TestClient

from tests.helpers import RETAIL, run_source
from trialrun import store as st
from trialrun.store import EpisodeRow, Store
from trialrun.trajectory import EndReason
from trialrun.web.app import create_app
from trialrun.web.cli import is_loopback

ON_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TRIALRUN = Path(sys.executable).parent / "trialrun"


def reviewed(seeds: int) -> str:
    doc = yaml.safe_load((RETAIL / "cancel_pending.yaml").read_text())
    doc["agent"] = {"type": "scripted:retail"}
    doc["checkpoints"] = {"policy": "before_irreversible", "on_deny": "abort",
                          "human": {"type": "reviewer"}}
    doc["seeds"], doc["trials"] = seeds, 1
    return yaml.safe_dump(doc)


def paused_run(tmp_path: Path, seeds: int) -> tuple[str, Store, str]:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(url)
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    out: list = []
    worker = threading.Thread(target=lambda: out.append(run_source(store, reviewed(seeds))))
    worker.start()
    worker.join(120)
    [run] = out
    assert run.paused == seeds
    return url, store, run.run_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn in a daemon thread on 127.0.0.1 and a free port; stopped cleanly."""

    def __init__(self, url: str, token: str | None = None, **options: object) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.app = create_app(url, token, **options)  # type: ignore[arg-type]
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def resume(url: str, run_id: str) -> None:
    """`trialrun run --resume` in a new process, as a person would after answering."""
    out = subprocess.run([str(TRIALRUN), "run", "--resume", run_id, "--db", url,
                          "--no-progress"], capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 1), out.stderr + out.stdout


# --- the browser ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    yield from launch_browser()


def launch_browser():
    """Debian's Chromium through Playwright (skipped off CI when either is missing)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if ON_CI:
            pytest.fail("playwright is missing on CI: pip install playwright")
        pytest.skip("playwright not installed (pip install playwright); CI is not set")
    exe = next((p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium"),
                            shutil.which("chromium-browser")) if p and Path(p).exists()), None)
    if exe is None:
        if ON_CI:
            pytest.fail("chromium is missing on CI: run scripts/setup-chromium.sh")
        pytest.skip("chromium not installed (run scripts/setup-chromium.sh); CI is not set")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe)
        yield b
        b.close()


class Tab:
    """A page that records console errors and uncaught exceptions."""

    def __init__(self, context) -> None:
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(e.message))

    def goto(self, url: str) -> int:
        response = self.page.goto(url)
        return response.status if response else 0


def test_a_reviewer_approves_and_denies_in_the_browser_and_resume_applies_it(
        browser, tmp_path):
    url, store, run_id = paused_run(tmp_path, seeds=2)
    first, second = store.reviews(run_id, "pending")
    context = browser.new_context()
    tab = Tab(context)
    page = tab.page
    with Server(url) as srv:
        assert tab.goto(srv.base + "/") == 200  # the queue, oldest first
        items = page.locator("#queue a.item")
        assert items.all_inner_texts() == [first.id, second.id]
        items.first.click()
        assert page.locator("#action").inner_text().startswith("cancel(")
        assert page.locator("#reason").inner_text() == "irreversible action"
        assert page.locator("table.steps tr").count() == first.step + 2  # header + steps
        page.fill("#reviewer", "ana")
        page.fill("#comment", "the wrong lamp: fine")
        page.evaluate("document.activeElement.blur()")  # out of the field: shortcuts live
        page.keyboard.press("a")  # approve; the next item opens
        page.wait_for_url(f"**/reviews/{second.id}")
        assert page.input_value("#reviewer") == "ana"  # remembered
        page.keyboard.press("d")  # deny
        page.wait_for_url("**/reviews?answered=*")
        assert page.locator("#empty").inner_text() == "Nothing waits for review."
        answered = {i.id: i for i in store.reviews(run_id)}
        assert (answered[first.id].approved, answered[first.id].reviewer,
                answered[first.id].comment) == (True, "ana", "the wrong lamp: fine")
        assert answered[second.id].approved is False and answered[second.id].answered_at

        resume(url, run_id)  # another process, as after a restart
        episodes = {e.key: e for e in store.episodes(run_id)}
        assert len(episodes) == 2 and store.get_run(run_id).status == "complete"
        ok, denied = episodes[first.episode_key], episodes[second.episode_key]
        assert ok.end_reason == "finished" and ok.success
        assert denied.end_reason == EndReason.aborted.value and not denied.success
        steps = store.load_episode(denied.id).steps
        held = steps[second.step]
        assert held.checkpoint.approved is False and held.result is None  # never ran
        assert not any(s.decision.tool == "cancel" and s.result is not None for s in steps)

        # Every page renders without console errors, and shows the answers.
        for path in ["/reviews", "/reviews?status=all", f"/reviews/{first.id}", "/runs",
                     f"/runs/{run_id}", f"/runs/{run_id}?success=no",
                     f"/episodes/{ok.id}", f"/episodes/{denied.id}", f"/runs/{run_id}/report"]:
            assert tab.goto(srv.base + path) == 200, path
        tab.goto(f"{srv.base}/episodes/{ok.id}")
        assert "approved by ana" in page.locator("#answers").inner_text()
        page.keyboard.press("n")  # no next item: nothing happens, no error
        tab.goto(f"{srv.base}/runs/{run_id}")
        assert page.locator("#episodes tr").count() == 3
        first_row = page.locator("#episodes tr").nth(1).inner_text()
        assert "aborted" in first_row  # failed first
    context.close()
    assert tab.errors == []


def test_the_same_item_answered_in_two_tabs_is_applied_once(browser, tmp_path):
    url, store, run_id = paused_run(tmp_path, seeds=1)
    [item] = store.reviews(run_id, "pending")
    context = browser.new_context()
    one, two = Tab(context), Tab(context)
    with Server(url) as srv:
        for tab in (one, two):
            assert tab.goto(f"{srv.base}/reviews/{item.id}") == 200
            tab.page.fill("#reviewer", "ana" if tab is one else "ben")
        one.page.click("#approve")
        one.page.wait_for_url("**/reviews?answered=*")
        with two.page.expect_response(lambda r: r.request.method == "POST") as posted:
            two.page.click("#deny")
        assert posted.value.status == 409
        assert "Already answered" in two.page.locator("#message").inner_text()
        assert "approved by ana" in two.page.locator("#message").inner_text()
        [after] = store.reviews(run_id)
        assert (after.status, after.approved, after.reviewer) == ("answered", True, "ana")
        resume(url, run_id)
        [ep] = store.episodes(run_id)
        assert ep.success and ep.end_reason == "finished"
    context.close()
    # The 409 page itself logs the failed POST as a resource error; nothing else may.
    assert [e for e in one.errors + two.errors if "409" not in e] == []


def test_a_forged_cross_site_post_is_refused_in_the_browser(browser, tmp_path):
    """A page on another origin auto-submits a form to the app: refused, nothing applied."""
    url, store, run_id = paused_run(tmp_path, seeds=1)
    [item] = store.reviews(run_id, "pending")
    context = browser.new_context()
    tab = Tab(context)
    with Server(url) as srv:
        tab.goto(srv.base + "/reviews")  # the victim has the app's cookies
        evil = f"http://127.0.0.1:{free_port()}"  # another origin: the attacker's page
        forged = (f'<form id=f method=post action="{srv.base}/reviews/{item.id}/answer">'
                  '<input name=verdict value=approve><input name=reviewer value=mallory>'
                  '</form>')
        tab.page.route(f"{evil}/attack", lambda r: r.fulfill(
            status=200, content_type="text/html", body=forged))
        tab.goto(f"{evil}/attack")
        with tab.page.expect_response(f"{srv.base}/reviews/{item.id}/answer") as posted:
            tab.page.evaluate("document.getElementById('f').submit()")
        assert posted.value.status == 403
    context.close()
    assert store.reviews(run_id)[0].status == "pending"


# --- security without a browser ---------------------------------------------------------
def test_posts_need_the_csrf_token_and_a_same_origin(tmp_path):
    url, store, run_id = paused_run(tmp_path, seeds=1)
    [item] = store.reviews(run_id, "pending")
    with TestClient(create_app(url)) as c:
        page = c.get(f"/reviews/{item.id}")
        assert page.status_code == 200
        csrf = c.cookies["trialrun_csrf"]
        assert f'value="{csrf}"' in page.text
        form = {"verdict": "approve", "reviewer": "ana"}
        assert c.post(f"/reviews/{item.id}/answer", data=form).status_code == 403
        assert c.post(f"/reviews/{item.id}/answer", data={**form, "csrf": "x" * 43}
                      ).status_code == 403
        assert c.post(f"/reviews/{item.id}/answer", data={**form, "csrf": csrf},
                      headers={"origin": "http://evil.example"}).status_code == 403
        assert store.reviews(run_id)[0].status == "pending"
        ok = c.post(f"/reviews/{item.id}/answer", data={**form, "csrf": csrf},
                    follow_redirects=False)
        assert ok.status_code == 303
        again = c.post(f"/reviews/{item.id}/answer",
                       data={**form, "verdict": "deny", "csrf": csrf})
        assert again.status_code == 409 and "Already answered" in again.text
        assert store.reviews(run_id)[0].approved is True


def test_an_item_past_its_deadline_is_left_to_the_fallback(tmp_path):
    url, store, run_id = paused_run(tmp_path, seeds=1)
    item = store.add_review(run_id, "late", 0, '{"kind":"finish","node":"end"}', "every 1",
                            0.01)
    time.sleep(0.05)
    with TestClient(create_app(url)) as c:
        assert "Past its deadline" in c.get(f"/reviews/{item.id}").text
        r = c.post(f"/reviews/{item.id}/answer", data={
            "verdict": "approve", "reviewer": "ana", "csrf": c.cookies["trialrun_csrf"]})
        assert r.status_code == 409 and "Past its deadline" in r.text
    assert store.review_item(run_id, "late", 0).status == "pending"


def test_pages_escape_untrusted_text_and_set_security_headers(tmp_path):
    url, store, run_id = paused_run(tmp_path, seeds=1)
    evil = '{"kind":"message","node":"reply","text":"<script>alert(1)</script>"}'
    item = store.add_review(run_id, "x", 0, evil, "<img src=x onerror=alert(2)>", None)
    with TestClient(create_app(url)) as c:
        r = c.get(f"/reviews/{item.id}")
        assert "<script>alert" not in r.text and "&lt;script&gt;" in r.text
        assert "<img src=x" not in r.text
        assert r.headers["x-content-type-options"] == "nosniff"
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert c.get("/reviews/nope").status_code == 404
        assert c.get("/runs/nope").status_code == 404


def test_with_a_token_every_request_carries_it(tmp_path):
    url, store, run_id = paused_run(tmp_path, seeds=1)
    with TestClient(create_app(url, token="s3cret")) as c:
        assert c.get("/runs").status_code == 401
        assert c.get("/runs", headers={"accept": "text/html"}, follow_redirects=False
                     ).headers["location"].startswith("/login")
        assert c.get("/runs", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/runs", headers={"authorization": "Bearer wrong"}).status_code == 401
        c.get("/login")
        csrf = c.cookies["trialrun_csrf"]
        bad = c.post("/login", data={"token": "nope", "csrf": csrf, "next": "/runs"})
        assert bad.status_code == 403
        good = c.post("/login", data={"token": "s3cret", "csrf": csrf, "next": "/runs"},
                      follow_redirects=False)
        assert good.status_code == 303 and good.headers["location"] == "/runs"
        assert c.get("/runs").status_code == 200  # the cookie


def test_a_non_loopback_bind_without_a_token_refuses_to_start():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    env = {k: v for k, v in os.environ.items() if k != "TRIALRUN_TOKEN"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "trialrun.cli", "serve", "--host", "0.0.0.0",
                          "--port", str(free_port())], capture_output=True, text=True,
                         env=env, timeout=30)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--token" in lines[0] and "TRIALRUN_TOKEN" in lines[0]
    assert time.perf_counter() - t0 < 10


def test_serve_starts_on_loopback_and_stops_by_pid(tmp_path):
    url, store, run_id = paused_run(tmp_path, seeds=1)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "trialrun.cli", "serve", "--port", str(port),
                             "--db", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        import httpx

        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/runs/{run_id}")
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline, \
                    proc.stderr.read().decode()
                time.sleep(0.1)
        assert r.status_code == 200 and run_id in r.text
    finally:
        proc.terminate()
        proc.wait(10)


# --- a large run ----------------------------------------------------------------------
def big_run(store: Store, n: int) -> str:
    """A run of `n` stored episodes, inserted in one transaction (fast, no agents)."""
    run_id = store.create_run(["bench"], {}, n, {})
    rows = [dict(id=f"{run_id}-{i:016x}", run_id=run_id, key=f"s{i % 7}/t{i % 50}/{i}/0",
                 scenario=f"retail/s{i % 7}", task=f"t{i % 50}", seed=i, trial=0,
                 agent="scripted:retail", policy="never",
                 end_reason="finished" if i % 9 else "truncated", success=i % 5 != 0,
                 score=1.0, n_steps=4, outcome_grades="[]", metrics="{}")
            for i in range(n)]
    with store.engine.begin() as c:
        c.execute(insert(EpisodeRow.__table__), rows)
    return run_id


def test_a_20000_episode_run_page_is_served_in_well_under_a_second(tmp_path):
    url = f"sqlite:///{tmp_path / 'big.db'}"
    store = Store(url)
    run_id = big_run(store, 20_000)
    with TestClient(create_app(url)) as c:
        c.get("/runs")  # warm: templates compiled
        times = {}
        for path in [f"/runs/{run_id}", f"/runs/{run_id}?page=300",
                     f"/runs/{run_id}?success=yes&scenario=retail/s3&page=20", "/runs"]:
            t0 = time.perf_counter()
            r = c.get(path)
            times[path] = time.perf_counter() - t0
            assert r.status_code == 200
        print("page times (s):", {k: round(v, 4) for k, v in times.items()})
        assert max(times.values()) < 2.0
        first = c.get(f"/runs/{run_id}").text
        assert first.count("/episodes/") == 50  # one page, failed first
        table = first.split('id="episodes"')[1]
        assert 'class="bad">no' in table and 'class="ok">yes' not in table
    rows, total = st.episode_page(store, run_id, 50, 0, success=False)
    assert total == 4000 and all(r.success is False for r in rows)
