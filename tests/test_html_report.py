"""The HTML report: self-contained, complete, graceful when parts are missing, and rendered
by a real headless browser without console errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from tests.helpers import RETAIL, run_scenarios
from trialrun.analysis.data import load_run
from trialrun.analysis.summary import summarize
from trialrun.html_report import render_html, write_html
from trialrun.runner import RunOptions, run_episodes
from trialrun.scenarios.loader import load_scenario
from trialrun.store import Store
from trialrun.variants import policy_variants

SECTIONS = ["Overview", "Outcomes", "Decisions", "Compounding errors", "Success vs horizon",
            "Escalation and checkpoints", "Checkpoint policies", "Cost and latency"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  # Belt and braces: even a stray external reference could not be fetched.
                  "--host-resolver-rules=MAP * ~NOTFOUND",
                  "--enable-logging=stderr", "--v=0"]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag: str) -> None:
        self._in_h2 = self._in_h2 and tag != "h2"

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.headings.append(data.strip())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, str, Path, float]:
    """One run with every section: node errors, ambiguity (asking for help), repeated
    trials, and a checkpoint-policy comparison on the same seeds."""
    tmp = tmp_path_factory.mktemp("html")
    store = Store(f"sqlite:///{tmp / 'runs.db'}")
    names = ["known_error_rates.yaml", "ambiguous_refund.yaml", "ambiguous_never_ask.yaml"]
    loaded = [load_scenario(RETAIL / n) for n in names]
    loaded += policy_variants([load_scenario(RETAIL / "known_error_rates.yaml")],
                              ["never", "before_irreversible", "always"])
    import anyio

    run = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions()))
    path = tmp / "report.html"
    t0 = time.perf_counter()
    write_html(store, run.run_id, path)
    return store, run.run_id, path, time.perf_counter() - t0


def test_report_is_self_contained_and_complete(report):
    store, run_id, path, seconds = report
    html = path.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(html)
    # Nothing to fetch: no scripts, stylesheets or frames; every link is in-page or inline data.
    for tag, attrs in parser.tags:
        assert tag not in {"script", "link", "iframe", "object", "embed"}, tag
        for name in ("src", "href", "xlink:href"):
            if attrs.get(name) is not None:
                assert attrs[name].startswith(("#", "data:")), (tag, name, attrs[name][:80])
    # CSS/SVG url() may only point inside the page (SVG clip paths use url(#id)).
    assert not re.search(r"url\(\s*['\"]?(?!#)", html) and "@import" not in html
    assert parser.headings == SECTIONS
    figures = [a for t, a in parser.tags if t == "svg" and a.get("role") == "img"]
    assert len(figures) >= 6, len(figures)
    for fig_id in ("node-accuracy", "workflow", "compounding", "propagation", "escalation",
                   "risk-coverage", "policies", "horizon-steps", "horizon-time"):
        assert f'id="fig-{fig_id}"' in html, fig_id
    assert 'class="plot-error"' not in html
    s = summarize(load_run(store, run_id))
    assert str(escape(s.reliability.escalation.verdict)) in html
    for p in s.policies:
        assert f"<td>{p.policy}</td>" in html
    assert "pass^k" in html and "P50" in html
    # Typically about a second; the bound leaves room for a slow CI machine.
    assert seconds < 5, f"HTML report took {seconds:.1f} s"


def test_report_skips_what_a_run_lacks(store, tmp_path):
    run = run_scenarios(store, [RETAIL / "order_status.yaml"], limit=3)
    path = write_html(store, run.run_id, tmp_path / "small.html")
    html = path.read_text(encoding="utf-8")
    assert "Checkpoint policies" not in html and 'class="plot-error"' not in html
    # Without the deep analysis (no reliability section) the page still renders.
    shallow = render_html(summarize(load_run(store, run.run_id), deep=False))
    assert "<h2>Overview</h2>" in shallow and "Success vs horizon" not in shallow
    assert 'class="plot-error"' not in shallow


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail("chromium is missing on CI: run scripts/setup-chromium.sh")
    pytest.skip("chromium not installed (run scripts/setup-chromium.sh); CI is not set")


def _screenshot(chromium: str, page: Path, png: Path, profile: Path) -> str:
    proc = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
         "--window-size=1280,4000", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def _console_errors(log: str) -> list[str]:
    # A page without scripts has nothing to say on the console: any console line is a fault.
    return [line for line in log.splitlines()
            if "Uncaught" in line or "ERROR:CONSOLE" in line or ":CONSOLE" in line]


def test_report_renders_in_headless_chromium(chromium, report, tmp_path):
    _, _, page, _ = report
    # The log check must be able to fail: a page with a script error shows up in it.
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><p>x</p><script>notAFunction();</script>")
    bad_log = _screenshot(chromium, bad, tmp_path / "bad.png", tmp_path / "profile-bad")
    assert any("Uncaught" in line for line in _console_errors(bad_log)), bad_log[-3000:]

    png = tmp_path / "report.png"
    log = _screenshot(chromium, page, png, tmp_path / "profile")
    assert not _console_errors(log), _console_errors(log)
    assert png.exists() and png.stat().st_size > 50_000, png.stat().st_size
    import matplotlib.image

    img = matplotlib.image.imread(png)[..., :3]
    assert img.shape[:2] == (4000, 1280)
    colours = np.unique((img.reshape(-1, 3)[::7] * 255).astype(np.uint8), axis=0)
    assert len(colours) > 50, len(colours)  # text, plots and colour maps, not a blank page
    background = np.all(np.abs(img - img[5, 5]) < 0.02, axis=-1)
    assert background.mean() < 0.97, "the screenshot is almost all background"
