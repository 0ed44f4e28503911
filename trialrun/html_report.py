"""The HTML report: one self-contained page per run, with plots, that opens with no server
and no network.

Everything is inlined: plots are matplotlib SVG (text kept as text, so the page stays small
and searchable), the CSS sits in the page, there is no JavaScript, no font or image is
fetched. The page renders the same `RunSummary` as the terminal report and `--json`; any
part of it may be missing (a run without escalation, policies or repeated trials), and the
page then leaves that part out.
"""

from __future__ import annotations

import io
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import networkx as nx
import numpy as np
from jinja2 import Environment, PackageLoader
from markupsafe import Markup
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from trialrun.analysis.agents import agent_note, agent_rows
from trialrun.analysis.horizon import exponential_survival, weibull_survival
from trialrun.analysis.reliability import (
    VERDICT_WORDS,
    HorizonFits,
    Propagation,
    SharedCause,
    hazard_words,
)
from trialrun.analysis.summary import LABELS, MEANINGS, Proportion, RunSummary
from trialrun.store import Store

log = logging.getLogger(__name__)

# Palette: the same colours as the page's CSS variables.
BLUE, ORANGE, GREEN, RED, GREY, INK = (
    "#2563eb", "#ea580c", "#16a34a", "#dc2626", "#94a3b8", "#1e293b")
FONT = ["DejaVu Sans", "Helvetica", "Arial", "sans-serif"]
_RC = {
    "svg.fonttype": "none",  # text stays text: small files, crisp at any zoom
    "font.family": "sans-serif",
    "font.sans-serif": FONT,
    "font.size": 9.5,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#64748b",
    "axes.labelcolor": INK,
    "xtick.color": "#475569",
    "ytick.color": "#475569",
    "text.color": INK,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
}


@dataclass
class Plot:
    id: str
    title: str
    caption: str
    svg: Markup | None = None
    error: str | None = None


@dataclass
class TableData:
    headers: list[str]
    rows: list[list[str]]
    numeric: set[int]  # right-aligned columns
    caption: str = ""


# --------------------------------------------------------------------------------------------
# formatting


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "–" if x is None or not math.isfinite(x) else format(x, fmt)


def _g(x: float | None) -> str:
    """A measurement with sensible precision: 0.69, 41.0, 340."""
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def _share(x: float) -> str:
    """A probability in few characters that still tells 99.7% from 100% and 0.3% from 0."""
    if 0 < x < 0.005:
        return "<1%"
    if 0.99 <= x < 0.9995 or 0.0005 <= x < 0.01:
        return f"{100 * x:.1f}%"
    return f"{100 * x:.0f}%"


def _prop(p: Proportion) -> str:
    if p.rate is None:
        return "–"
    return f"{_pct(p.rate)} [{_pct(p.lo)}, {_pct(p.hi)}] ({p.k}/{p.n})"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = (),
           caption: str = "") -> TableData:
    return TableData(list(headers), [[str(c) for c in r] for r in rows], set(numeric), caption)


# --------------------------------------------------------------------------------------------
# figures


def _figure(w: float, h: float) -> tuple[Figure, Axes]:
    # Figure objects, not pyplot: nothing registers in pyplot's global figure list, so
    # nothing leaks and no backend is selected for the whole process.
    fig = Figure(figsize=(w, h), layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig: Figure, name: str, title: str) -> Markup:
    buf = io.BytesIO()
    # A per-figure salt keeps clip-path ids unique across the page and stable across runs.
    with matplotlib.rc_context({"svg.hashsalt": name}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue().decode("utf-8")
    text = text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: invalid inside HTML
    text = re.sub(r"<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    label = Markup.escape(title)
    text = text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)
    return Markup(text)


def _node_order(s: RunSummary) -> list[str]:
    """Nodes in workflow order (layer of the Markov chain, then visits), else as stored."""
    names = [n.node for n in s.nodes]
    r = s.reliability
    if r is None or r.markov is None:
        return names
    layer = _layers(r.markov.edges, r.markov.start)
    visits = r.markov.expected_visits
    big = max(layer.values(), default=0) + 1
    return sorted(names, key=lambda n: (layer.get(n, big), -visits.get(n, 0.0), n))


def _layers(edges: Sequence[tuple[str, str, float]], start: str) -> dict[str, int]:
    """Longest-path layer of each node once loops are cut: a DFS that follows the likeliest
    edge first drops back edges (retries, clarifications), which leaves a DAG."""
    g = nx.DiGraph()
    for a, b, p in edges:
        if a != b:
            g.add_edge(a, b, p=p)
    if start not in g:
        g.add_node(start)
    dag = nx.DiGraph()
    dag.add_nodes_from(g)
    done: set[str] = set()
    for root in [start, *sorted(g.nodes)]:
        if root in done:
            continue
        # Iterative DFS: (node, iterator over its successors); the stack holds the path.
        on_path = {root}
        stack = [(root, iter(sorted(g.successors(root), key=lambda v, u=root: -g[u][v]["p"])))]
        while stack:
            u, it = stack[-1]
            v = next(it, None)
            if v is None:
                stack.pop()
                on_path.discard(u)
                done.add(u)
                continue
            if v in on_path:
                continue  # back edge: a loop, not progress through the workflow
            dag.add_edge(u, v)
            if v not in done:
                on_path.add(v)
                stack.append((v, iter(sorted(g.successors(v),
                                             key=lambda w, u=v: -g[u][w]["p"]))))
    layer: dict[str, int] = {}
    for n in nx.topological_sort(dag):
        layer[n] = max((layer[p] + 1 for p in dag.predecessors(n)), default=0)
    return layer


def plot_node_accuracy(s: RunSummary) -> Figure | None:
    by = {n.node: n for n in s.nodes if n.accuracy.rate is not None}
    order = [n for n in _node_order(s) if n in by][::-1]  # first node at the top
    if not order:
        return None
    fig, ax = _figure(7.2, 1.0 + 0.55 * len(order))
    y = np.arange(len(order))

    def series(attr: str) -> tuple[np.ndarray, np.ndarray]:
        ps = [getattr(by[n], attr) for n in order]
        rate = np.array([np.nan if p.rate is None else p.rate for p in ps], dtype=float)
        lo = np.array([np.nan if p.lo is None else p.lo for p in ps], dtype=float)
        hi = np.array([np.nan if p.hi is None else p.hi for p in ps], dtype=float)
        # clip: Wilson bounds can sit a rounding error inside the rate
        return rate, np.clip(np.nan_to_num([rate - lo, hi - rate]), 0, None)

    ep, ep_err = series("accuracy_per_episode")
    call, call_err = series("accuracy")
    marg = np.array([np.nan if by[n].marginal.rate is None else by[n].marginal.rate
                     for n in order])
    ax.errorbar(ep, y + 0.2, xerr=ep_err, fmt="s", color=GREEN, ecolor=GREEN,
                elinewidth=1.6, capsize=3, ms=6, label="per episode, clean prefix (95% CI)")
    ax.errorbar(call, y, xerr=call_err, fmt="o", color=BLUE, ecolor=BLUE,
                elinewidth=1.6, capsize=3, ms=6, label="per call, clean prefix (95% CI)")
    ax.scatter(marg, y - 0.2, marker="D", s=26, facecolor="white", edgecolor=ORANGE,
               linewidth=1.4, zorder=3, label="per call, every call (marginal)")
    ax.set_yticks(y, [f"{n}  (n={by[n].steps})" for n in order])
    low = np.nanmin(np.r_[ep - ep_err[0], call - call_err[0], marg])
    ax.set_xlim(max(0.0, math.floor((low - 0.05) * 10) / 10), 1.01)
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.grid(axis="x", color="#e2e8f0", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_xlabel("accuracy of the node's decisions")
    ax.set_ylabel("node (graded calls)")
    ax.set_title("Per-node accuracy")
    fig.legend(loc="outside lower center", ncols=3)
    return fig


def plot_compounding(s: RunSummary) -> Figure | None:
    if s.predicted_success is None or s.success.rate is None:
        return None
    sc = s.reliability.shared_cause if s.reliability else None
    ratio = sc.co_error_ratio if sc is not None else None
    has_ratio = ratio is not None and ratio.estimate is not None
    fig = Figure(figsize=(7.2 if has_ratio else 5.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[1.3, 1]) if has_ratio else [fig.add_subplot()]
    ax = axes[0]
    labels = ["predicted success\n(chain rule)", "success\n(observed)"]
    vals = [s.predicted_success, s.success.rate]
    colours = ["#bfdbfe", BLUE]
    x = np.arange(len(vals))
    ax.bar(x, vals, 0.6, color=colours, edgecolor=BLUE)
    ax.errorbar([1], [s.success.rate], capsize=4, color=INK, linewidth=1.2,
                yerr=[[max(0.0, s.success.rate - (s.success.lo or 0))],
                      [max(0.0, (s.success.hi or 0) - s.success.rate)]])
    for xi, v in zip(x, vals, strict=True):
        top = max(v, s.success.hi or v) if xi == 1 else v
        ax.text(xi, top + 0.015, _pct(v), ha="center", va="bottom", fontsize=8.5)
    gap = [f"+{s.recovered} recovered" if s.recovered else "",
           f"−{s.failed_without_graded_error} failed, no graded error"
           if s.failed_without_graded_error else ""]
    if any(gap):
        ax.text(0.5, 0.04, "\n".join(g for g in gap if g), ha="center", va="bottom",
                fontsize=8, color=INK, transform=ax.get_xaxis_transform())
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.12)
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_ylabel("share of episodes")
    ax.set_title("Predicted vs observed success")
    if has_ratio:
        _plot_co_error_ratio(axes[1], sc)
    return fig


def _plot_co_error_ratio(ax: Axes, sc: SharedCause) -> None:
    """The co-error ratio and its CI against the verdict's bands."""
    r = sc.co_error_ratio
    lo, hi = r.lo if r.lo is not None else r.estimate, r.hi if r.hi is not None else r.estimate
    top = max(2.5, (hi or 1) * 1.15)
    ax.axvspan(0, 0.9, color="#e0f2fe", zorder=0)
    ax.axvspan(1.1, top, color="#fee2e2", zorder=0)
    ax.axvline(1.0, color=INK, linewidth=1, linestyle=":")
    ax.errorbar([r.estimate], [0], xerr=[[r.estimate - lo], [hi - r.estimate]], fmt="o",
                color=RED if sc.verdict == "shared_cause" else BLUE, capsize=4, ms=7)
    ax.text(r.estimate, 0.12, f"{r.estimate:.2f} [{lo:.2f}, {hi:.2f}]", ha="center",
            fontsize=8.5)
    ax.text(0.95, 0.38, "1 = independent", rotation=90, ha="right", va="top", fontsize=8,
            color=GREY)
    ax.text(1.15, -0.48, "CI above 1.1: shared cause →", ha="left", fontsize=8, color=GREY)
    ax.set_xlim(0, top)
    ax.set_ylim(-0.55, 0.4)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.set_xlabel("co-error ratio (1 = independent)")
    ax.set_title("Shared cause?")


def _time_scale(h: HorizonFits, t_max: float) -> tuple[float, str]:
    """Divisor and unit name that keep a horizon's numbers readable (days, not 10⁷ s)."""
    if h.unit != "simulated seconds":
        return 1.0, h.unit
    for div, name in ((86400.0, "simulated days"), (3600.0, "simulated hours"),
                      (60.0, "simulated minutes")):
        if t_max >= 3 * div:
            return div, name
    return 1.0, h.unit


def _horizon_axes(ax: Axes, h: HorizonFits) -> str:
    """Draw the survival plot; returns the unit its x axis is in. Fitted curves are solid
    where there are data and dotted past the longest episode, where they extrapolate."""
    t_km = np.asarray(h.km_t, dtype=float)
    s_km = np.asarray(h.km_s, dtype=float)
    marks = [x for x in (h.exponential_t50, h.weibull_t50) if x is not None and math.isfinite(x)]
    end = h.data_end if h.data_end is not None else max([*t_km.tolist(), 1e-9])
    t_max = max([*t_km.tolist(), *marks, end, 1e-9]) * 1.25
    div, unit = _time_scale(h, t_max)
    t = np.linspace(0, t_max, 240)  # fits are evaluated in the stored unit, drawn in `unit`
    seen, past = t <= end, t >= end
    ax.step(np.r_[0.0, t_km] / div, np.r_[1.0, s_km], where="post", color=INK, linewidth=2,
            label=f"Kaplan–Meier ({h.events} errors, {h.censored} censored)")

    def fmt(x: float | None) -> str:
        if x is None:
            return "–"
        return _g(x / div) + ("*" if x > end else "")

    def curve(surv: np.ndarray, color: str, style: str, label: str) -> None:
        ax.plot(t[seen] / div, surv[seen], color=color, linewidth=1.6, linestyle=style,
                label=label)
        ax.plot(t[past] / div, surv[past], color=color, linewidth=1.2, linestyle=":",
                alpha=0.8)

    if h.exponential_lambda is not None:
        curve(exponential_survival(t, h.exponential_lambda), BLUE, "-",
              f"exponential: T50 {fmt(h.exponential_t50)}, T80 {fmt(h.exponential_t80)}")
        _mark(ax, h.exponential_t50, 0.5, BLUE, div)
        _mark(ax, h.exponential_t80, 0.8, BLUE, div)
    if h.weibull_k is not None and h.weibull_eta is not None:
        curve(weibull_survival(t, h.weibull_eta, h.weibull_k), ORANGE, "--",
              f"Weibull k={h.weibull_k:.2f}: T50 {fmt(h.weibull_t50)}, "
              f"T80 {fmt(h.weibull_t80)}")
        _mark(ax, h.weibull_t50, 0.5, ORANGE, div)
        _mark(ax, h.weibull_t80, 0.8, ORANGE, div)
    if end < t_max:
        ax.axvspan(end / div, t_max / div, color="#f1f5f9", zorder=0)
        ax.axvline(end / div, color=GREY, linewidth=1, linestyle="--")
        ax.text(end / div, 1.02, " data end → extrapolation", ha="left", va="bottom",
                fontsize=8, color=GREY)
    for q in (0.5, 0.8):
        ax.axhline(q, color="#cbd5e1", linewidth=0.8, zorder=0)
        ax.text(t_max / div, q, f" {100 * q:.0f}%", va="center", ha="left", fontsize=8,
                color=GREY)
    ax.set_xlim(0, t_max / div)
    ax.set_ylim(0, 1.1)
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%" if v <= 1 else "")
    ax.set_xlabel(unit + " into the episode")
    ax.set_ylabel("P(no error yet)")
    ax.legend(loc="lower left")
    return unit


def _mark(ax: Axes, t: float | None, q: float, color: str, div: float) -> None:
    if t is not None and math.isfinite(t):
        ax.plot([t / div, t / div], [0, q], color=color, linewidth=0.9, linestyle=":")
        ax.plot([t / div], [q], marker="o", ms=4.5, color=color)


def plot_horizon(h: HorizonFits | None) -> Figure | None:
    if h is None or not h.km_t:
        return None
    fig, ax = _figure(6.4, 3.6)
    unit = _horizon_axes(ax, h)
    ax.set_title(f"Success vs horizon ({unit})")
    return fig


def plot_policies(s: RunSummary) -> Figure | None:
    pts = [p for p in s.policies if p.success is not None]
    if not pts:
        return None
    fig, ax = _figure(6.4, 3.8)
    for p in pts:
        lo = p.success if p.success_lo is None else p.success_lo
        hi = p.success if p.success_hi is None else p.success_hi
        ax.errorbar([p.human_minutes_per_episode], [p.success], fmt="o", ms=7, capsize=3,
                    yerr=[[max(0.0, p.success - lo)], [max(0.0, hi - p.success)]],
                    color=BLUE if p.on_frontier else GREY,
                    mfc=BLUE if p.on_frontier else "white", mew=1.5)
        ax.annotate(p.policy, (p.human_minutes_per_episode, p.success), xytext=(7, 5),
                    textcoords="offset points", fontsize=8.5)
    front = sorted((p for p in pts if p.on_frontier), key=lambda p: p.human_minutes_per_episode)
    if len(front) > 1:
        ax.plot([p.human_minutes_per_episode for p in front], [p.success for p in front],
                color=BLUE, linewidth=1.2, zorder=0, label="frontier")
        ax.legend(loc="lower right")
    xmax = max(p.human_minutes_per_episode for p in pts)
    ax.set_xlim(-0.05 * max(xmax, 0.1), max(xmax, 0.1) * 1.3)
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_xlabel("human minutes per episode")
    ax.set_ylabel("success (95% CI)")
    ax.set_title("Checkpoint policies: success vs human time")
    return fig


def plot_confusion(s: RunSummary) -> Figure | None:
    if s.reliability is None:
        return None
    e = s.reliability.escalation
    if e.tp + e.fp + e.fn == 0:  # nobody asked, nothing needed help: nothing to show
        return None
    counts = np.array([[e.tp, e.fp], [e.fn, e.tn]], dtype=float)
    col = counts.sum(axis=0, keepdims=True)
    share = np.divide(counts, col, out=np.zeros_like(counts), where=col > 0)
    fig, ax = _figure(4.6, 3.6)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    names = [["TP", "FP"], ["FN", "TN"]]
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{names[i][j]} {int(counts[i, j])}\n{_pct(share[i, j], 0)}",
                    ha="center", va="center", fontsize=9,
                    color="white" if share[i, j] > 0.6 else INK)
    ax.set_xticks([0, 1], ["help needed", "not needed"])
    ax.set_yticks([0, 1], ["asked", "did not ask"])
    ax.set_xlabel("did the step need a human?")
    ax.set_ylabel("what the agent did")
    ax.spines[:].set_visible(False)
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the column",
                 format=lambda v, _: f"{100 * v:.0f}%")
    ax.set_title("Escalation: asked vs needed")
    return fig


def plot_risk_coverage(s: RunSummary) -> Figure | None:
    if s.reliability is None or not s.reliability.escalation.risk_coverage:
        return None
    e = s.reliability.escalation
    cov, risk = np.array(e.risk_coverage, dtype=float).T
    fig, ax = _figure(4.6, 3.6)
    ax.plot(cov, risk, color=BLUE, linewidth=1.8, marker="o", ms=2.5)
    ax.axhline(risk[-1], color=GREY, linestyle=":", linewidth=1,
               label=f"error rate of all decisions ({_pct(risk[-1])})")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, max(float(risk.max()) * 1.15, 0.05))
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_xlabel("coverage: most confident decisions kept")
    ax.set_ylabel("risk: error rate among them")
    ax.set_title("Confidence: risk vs coverage")
    ax.legend(loc="upper left")
    return fig


def _propagation_view(p: Propagation) -> tuple[list[int], list[int]]:
    """Rows (upstream) and columns (downstream) worth showing: those with a conditional
    probability given an upstream error, else those with any value at all."""
    n = len(p.nodes)
    rows = [i for i in range(n) if any(v is not None for v in p.given_wrong[i])]
    cols = [j for j in range(n) if any(p.given_wrong[i][j] is not None for i in rows)]
    if rows and cols:
        return rows, cols
    rows = [i for i in range(n) if any(v is not None for v in p.given_right[i])]
    cols = [j for j in range(n) if any(p.given_right[i][j] is not None for i in rows)]
    return rows, cols


def plot_propagation(s: RunSummary) -> Figure | None:
    p = s.reliability.propagation if s.reliability else None
    if p is None:
        return None
    rows, cols = _propagation_view(p)
    if not rows or not cols:
        return None
    rank = {n: i for i, n in enumerate(_node_order(s))}
    rows.sort(key=lambda i: rank.get(p.nodes[i], len(rank)))
    cols.sort(key=lambda j: rank.get(p.nodes[j], len(rank)))
    gw = np.array([[np.nan if p.given_wrong[i][j] is None else p.given_wrong[i][j]
                    for j in cols] for i in rows], dtype=float)
    fig, ax = _figure(1.8 + 1.05 * len(cols), 1.5 + 0.62 * len(rows))
    im = ax.imshow(np.ma.masked_invalid(gw), cmap="Reds", vmin=0, vmax=1, aspect="auto")
    ax.set_facecolor("#f1f5f9")  # cells with too few episodes
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            w, r = p.given_wrong[i][j], p.given_right[i][j]
            if w is None and r is None:
                continue
            txt = f"{_pct(w, 0)}\n({_pct(r, 0)})"
            ax.text(b, a, txt, ha="center", va="center", fontsize=8.5,
                    color="white" if w is not None and w > 0.6 else INK)
    ax.set_xticks(range(len(cols)), [p.nodes[j] for j in cols], rotation=25, ha="right")
    ax.set_yticks(range(len(rows)), [p.nodes[i] for i in rows])
    ax.set_xlabel("downstream node")
    ax.set_ylabel("upstream node")
    ax.spines[:].set_visible(False)
    fig.colorbar(im, ax=ax, shrink=0.85, label="P(downstream wrong | upstream wrong)",
                 format=lambda v, _: f"{100 * v:.0f}%")
    ax.set_title("Error propagation")
    return fig


def plot_workflow(s: RunSummary) -> Figure | None:
    m = s.reliability.markov if s.reliability else None
    if m is None or not m.edges:
        return None
    acc = {n.node: n.accuracy_per_episode.rate for n in s.nodes
           if n.accuracy_per_episode.rate is not None}
    terminal = {"Success", "Fail"}
    g = nx.DiGraph()
    for a, b, p in m.edges:
        g.add_edge(a, b, p=p)
    layer = _layers(m.edges, m.start)
    last = max((v for k, v in layer.items() if k not in terminal), default=0) + 1
    for n in g.nodes:
        g.nodes[n]["layer"] = last if n in terminal else layer.get(n, last - 1)
    pos = nx.multipartite_layout(g, subset_key="layer", align="vertical", scale=1.0)
    if terminal <= set(pos):  # Success above Fail
        (xs, ys), (xf, yf) = pos["Success"], pos["Fail"]
        pos["Success"], pos["Fail"] = (xs, max(ys, yf)), (xf, min(ys, yf))
    width = max(6.0, 1.45 * (last + 1))
    height = max(3.2, 1.3 * max(np.bincount([g.nodes[n]["layer"] for n in g.nodes])))
    fig, ax = _figure(min(width, 10.5), min(height, 7.0))
    cmap = matplotlib.colormaps["RdYlGn"]
    norm = Normalize(vmin=min(0.5, min(acc.values(), default=1.0)), vmax=1.0)
    inner = [n for n in g.nodes if n not in terminal]
    colors = [cmap(norm(acc[n])) if n in acc else "#e2e8f0" for n in inner]
    size = 1100
    nx.draw_networkx_nodes(g, pos, nodelist=inner, node_color=colors, node_size=size,
                           edgecolors=INK, linewidths=1.0, ax=ax)
    ends = [n for n in ("Success", "Fail") if n in g]
    nx.draw_networkx_nodes(g, pos, nodelist=ends, node_shape="s", node_size=size * 1.1,
                           node_color="white", linewidths=2.5, ax=ax,
                           edgecolors=[GREEN if n == "Success" else RED for n in ends])
    edges = list(g.edges(data="p"))
    widths = [0.6 + 4.0 * p for _, _, p in edges]
    # Rare transitions fade, so a dense graph still shows its main path.
    shades = [(0.39, 0.45, 0.55, 0.3 + 0.65 * min(1.0, 2 * p)) for _, _, p in edges]
    nx.draw_networkx_edges(g, pos, edgelist=[(a, b) for a, b, _ in edges], width=widths,
                           edge_color=shades, arrowsize=12, node_size=size,
                           connectionstyle="arc3,rad=0.12", ax=ax)
    floor = 0.0 if len(edges) <= 14 else 0.05  # label every edge only in a sparse graph
    labels = {(a, b): _share(p) for a, b, p in edges if floor <= p < 0.995 and a != b}
    nx.draw_networkx_edge_labels(g, pos, edge_labels=labels, font_size=7.5, ax=ax,
                                 connectionstyle="arc3,rad=0.12",
                                 bbox={"boxstyle": "round,pad=0.15", "fc": "white",
                                       "ec": "none", "alpha": 0.85})
    for n in g.nodes:
        x, y = pos[n]
        inside = ""
        if n in terminal:
            inside = _share(m.p_success if n == "Success" else 1 - m.p_success)
        elif n in acc:
            inside = _share(acc[n])
        fill = cmap(norm(acc[n])) if n in acc and n not in terminal else (1.0, 1.0, 1.0)
        dark = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2] < 0.5
        ax.text(x, y, inside, ha="center", va="center", fontsize=7.5, fontweight="bold",
                color="white" if dark else INK)
        loop = g.has_edge(n, n)
        label = n + (f"\n↻ {_share(g[n][n]['p'])}" if loop else "")
        ax.annotate(label, (x, y), xytext=(0, -19), textcoords="offset points", ha="center",
                    va="top", fontsize=8.5, zorder=5,
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                          "alpha": 0.8})
    ax.margins(x=0.08, y=0.22)
    ax.set_axis_off()
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.7, pad=0.02,
                 label="node accuracy per episode (clean prefix)",
                 format=lambda v, _: f"{100 * v:.0f}%")
    ax.set_title(f"Workflow from {m.start}: P(success) {_pct(m.p_success)}, "
                 f"{m.total_steps:.1f} expected steps")
    return fig


# --------------------------------------------------------------------------------------------
# page


def _plot(pid: str, title: str, caption: str, make: Callable[[], Figure | None]
          ) -> Plot | None:
    """Draw one plot; a failure costs that plot, never the whole report."""
    try:
        with matplotlib.rc_context(_RC):
            fig = make()
            if fig is None:
                return None
            return Plot(pid, title, caption, svg=_svg(fig, pid, title))
    except Exception as e:  # the rest of the report is still worth writing
        log.warning("HTML report: plot %s failed: %s", pid, e, exc_info=True)
        return Plot(pid, title, caption, error=f"{type(e).__name__}: {e}")


def _compounding_caption(s: RunSummary) -> str:
    txt = (f"Left: {LABELS['predicted_success']} — {MEANINGS['predicted_success']}; "
           f"{LABELS['success']} as observed, with its 95% CI. The two differ by the episodes "
           f"that {LABELS['recovered']} ({s.recovered}) and those that "
           f"{LABELS['failed_without_graded_error']} ({s.failed_without_graded_error}).")
    sc = s.reliability.shared_cause if s.reliability else None
    if sc is not None:
        if sc.co_error_ratio.estimate is not None:
            txt += (f" Right: {LABELS['co_error_ratio']} — {MEANINGS['co_error_ratio']}; 95% "
                    f"CI resampling {sc.resampled}s ({sc.n_boot} draws, seed {sc.seed} "
                    "derived from the data); shaded: the verdict's bands.")
        txt += f" {LABELS['shared_cause'].capitalize()}: {sc.meaning}."
    return txt


def _horizon_caption(h: HorizonFits) -> str:
    txt = ("Black: share of episodes with no error yet after t "
           f"{'steps' if h.unit == 'steps' else 'of simulated time'} (Kaplan–Meier, "
           "episodes that ended cleanly are censored); coloured: fitted survival curves, "
           "dots mark where each falls to 80% and 50% (T80, T50). The grey band starts where "
           "the data end (the longest episode): curves there are dotted extrapolations, and "
           "horizons marked * lie beyond the data.")
    if h.weibull_k is not None:
        txt += f" Weibull {hazard_words(h)}."
    if h.note:
        txt += f" {h.note}."
    return txt


def _headline(s: RunSummary) -> TableData:
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.end_reasons.items()))
    rows: list[list[str]] = [
        ["episodes", f"{s.episodes} ({reasons})", ""],
        [LABELS["success"], _prop(s.success), MEANINGS["success"]],
    ]
    if s.errors:
        rows.append(["infrastructure errors", f"{s.errors} episode(s) not scored", ""])
    if s.predicted_success is not None:
        rows.append([LABELS["predicted_success"], _pct(s.predicted_success),
                     MEANINGS["predicted_success"]])
        for key in ("recovered", "failed_without_graded_error"):
            if getattr(s, key):
                rows.append([LABELS[key], str(getattr(s, key)), MEANINGS[key]])
    r = s.reliability
    if r is not None and r.shared_cause is not None:
        sc = r.shared_cause
        ci = sc.co_error_ratio
        value = VERDICT_WORDS[sc.verdict]
        if ci.estimate is not None:
            value += f": co-error ratio {ci.estimate:.2f} [{_num(ci.lo)}, {_num(ci.hi)}]"
        rows.append([LABELS["shared_cause"], value, sc.meaning])
    if r is not None and r.markov is not None:
        rows.append(["expected steps per episode", f"{r.markov.total_steps:.1f}", ""])
    e = s.escalation
    rows.append(["asked for help", f"{e.asks} ({e.asks_needed} where needed; "
                 f"{e.needed_not_asked} needed but not asked)", ""])
    rows.append([LABELS["steps_needing_help"], str(e.steps_needing_help),
                 MEANINGS["steps_needing_help"]])
    if e.reviews:
        rows.append(["checkpoint reviews", f"{e.reviews} ({e.denials} denied)", ""])
    rows.append(["human time", f"{e.human_seconds / 60:.1f} min", ""])
    if s.user_fault_failures:
        rows.append(["failures caused by the simulated user", str(s.user_fault_failures), ""])
    return _table(["measure", "value", "what it means"], rows)


def _findings(s: RunSummary) -> list[str]:
    """The few sentences a reader should take away, in order of importance."""
    out = []
    rated = [n for n in s.nodes if n.accuracy_per_episode.rate is not None
             and n.accuracy_per_episode.rate < 1]
    if rated:
        w = min(rated, key=lambda n: n.accuracy_per_episode.rate or 0.0)
        out.append(f"Weakest decision: {w.node}, right in {_pct(w.accuracy_per_episode.rate)} "
                   f"of the episodes that reached it before any error ({w.first_errors} "
                   "episode(s) first went wrong there).")
    r = s.reliability
    if r is not None and r.blame:
        top, share = next(iter(r.blame.items()))
        out.append(f"{top} carries {100 * share:.0f}% of the blame for lost success.")
    if r is not None and r.shared_cause is not None:
        out.append("Shared cause: " + r.shared_cause.meaning + ".")
    if r is not None and r.propagation and r.propagation.strongest:
        out.append("Propagation: " + r.propagation.strongest[0] + ".")
    if r is not None and (r.escalation.tp + r.escalation.fp + r.escalation.fn):
        out.append(r.escalation.verdict)
    return out


def _judges(s: RunSummary) -> dict[str, Any] | None:
    """The LLM judges' section (noisy grades, apart from the trusted ones): per judge, the
    raw rate beside the corrected ones, which to believe and why, and its warnings."""
    r = s.judges
    if r is None:
        return None
    from trialrun.report import BELIEVE_WORDS, judge_calibration_text

    def rate(x: Any) -> str:
        return (f"{_pct(x.estimate)} [{_pct(x.lo)}, {_pct(x.hi)}]"
                + (f" ({x.n_labelled} of {x.n} labelled)" if x.n_labelled else ""))

    out = []
    for line in r.lines:
        where = f"at {', '.join(line.nodes)}" if line.scope == "node" else "outcomes"
        rows = [[LABELS["judge_pass_rate"], _prop(line.raw), MEANINGS["judge_pass_rate"]]]
        for key in ("rogan_gladen", "ppi"):
            x = getattr(line, key)
            if x is not None:
                rows.append([LABELS[key] + (" ← believe this" if line.believe == key else ""),
                             rate(x), MEANINGS[key]])
        if line.humans_only is not None:
            rows.append([LABELS["humans_only"], _prop(line.humans_only),
                         MEANINGS["humans_only"]])
        if line.not_judged:
            rows.append([LABELS["not_judged"], str(line.not_judged), MEANINGS["not_judged"]])
        if line.calibration is not None:
            rows.append(["calibration", judge_calibration_text(line.calibration),
                         f"{LABELS['judge_sensitivity'].capitalize()}: "
                         f"{MEANINGS['judge_sensitivity']}. "
                         f"{LABELS['judge_specificity'].capitalize()}: "
                         f"{MEANINGS['judge_specificity']}."])
        if line.self_agreement is not None:
            rows.append([LABELS["judge_self_agreement"],
                         f"{_pct(line.self_agreement, 0)} (Krippendorff's α "
                         f"{_num(line.self_alpha)})", MEANINGS["judge_self_agreement"]])
        title = (f"{line.grader} ({where}; "
                 f"{'re-graded' if line.source == 'regrade' else 'graded as the run ran'}"
                 + (f"; model {line.model}" if line.model else "")
                 + (f"; majority of {line.samples} samples" if line.samples > 1 else "") + ")")
        out.append({"title": title, "table": _table(["measure", "value", "what it means"],
                                                    rows),
                    "believe": f"Believe {BELIEVE_WORDS[line.believe]} — {line.why}.",
                    "warnings": line.warnings})
    note = (f"{LABELS['judged_success'].capitalize()}: {r.judged_success} episode(s) — "
            f"{MEANINGS['judged_success']}; the success rate above is partly judge-graded."
            if r.judged_success else "")
    return {"lines": out, "note": note}


def build_context(s: RunSummary, created_at: str = "") -> dict[str, Any]:
    r = s.reliability
    failed = s.success.n - s.success.k
    ctx: dict[str, Any] = {"s": s, "created_at": created_at, "headline": _headline(s),
                           "findings": _findings(s)}

    if len(s.by_scenario) > 0:
        ctx["by_scenario"] = _table(
            ["scenario", "success (Wilson 95% CI)", "infra errors"],
            [[x.scenario, _prop(x.success), x.errors] for x in s.by_scenario], [2])
    if s.trials and max(t.k for t in s.trials) > 1:
        cap = ""
        if r is not None and r.trials is not None:
            t = r.trials
            cap = (f"At k = {t.k}, 95% CI over tasks: pass@k {_num(t.pass_at_k.estimate, '.3f')}"
                   f" [{_num(t.pass_at_k.lo, '.3f')}, {_num(t.pass_at_k.hi, '.3f')}], pass^k "
                   f"{_num(t.pass_hat_k.estimate, '.3f')} [{_num(t.pass_hat_k.lo, '.3f')}, "
                   f"{_num(t.pass_hat_k.hi, '.3f')}]. pass@k: at least one of k trials "
                   "succeeds; pass^k: all k do (the reliability a user sees).")
        ctx["trials"] = _table(["k", "pass@k", "pass^k", "tasks"],
                               [[t.k, f"{t.pass_at_k:.3f}", f"{t.pass_hat_k:.3f}", t.tasks]
                                for t in s.trials], [0, 1, 2, 3], cap)

    blame = r.blame if r is not None else {}
    order = {n: i for i, n in enumerate(_node_order(s))}
    keys = ("accuracy_per_episode", "accuracy", "marginal", "visits_per_episode",
            "first_errors", "blame")
    ctx["nodes"] = _table(
        ["node", *(LABELS[k] for k in keys)],
        [[n.node, _prop(n.accuracy_per_episode), _prop(n.accuracy), _pct(n.marginal.rate),
          f"{n.visits_per_episode:.2f}", n.first_errors,
          _pct(blame.get(n.node), 0) if n.node in blame else ""]
         for n in sorted(s.nodes, key=lambda n: order.get(n.node, 0))], [3, 4, 5, 6],
        " ".join(f"{LABELS[k].capitalize()}: {MEANINGS[k]}." for k in keys)
    ) if s.nodes else None

    with_error = sum(s.first_error_nodes.values())
    if failed or with_error:
        rows = [[node, c, _pct(c / with_error, 0)] for node, c in s.first_error_nodes.items()]
        cap = (f"{LABELS['first_errors'].capitalize()}: {MEANINGS['first_errors']}; shares "
               f"are of the {with_error} episode(s) with a graded error.")
        if s.failed_without_graded_error:
            cap += (f" {LABELS['failed_without_graded_error'].capitalize()}: "
                    f"{s.failed_without_graded_error}.")
        de = s.decisive_errors
        if de is not None:
            cap += (f" Counterfactual replay of {de.attributed} failures found a single "
                    f"decisive correction in {de.found}: " + ", ".join(
                        f"{k} {v}" for k, v in de.by_node.items())
                    + f"; the first error was the decisive one in {de.first_is_decisive}.")
        ctx["first_errors"] = _table(["node", LABELS["first_errors"],
                                      "share of episodes with a graded error"],
                                     rows, [1, 2], cap)

    if r is not None:
        e = r.escalation
        ctx["verdict"] = e.verdict
        ctx["escalation"] = _table(["measure", "value"], [
            ["asked where needed (TP)", e.tp], ["asked, not needed (FP)", e.fp],
            ["needed, not asked (FN)", e.fn], ["not needed, not asked (TN)", e.tn],
            ["precision / recall / Ask-F1",
             f"{_num(e.precision)} / {_num(e.recall)} / {_num(e.f1)}"],
            ["over- / under-escalation", f"{_num(e.over_escalation)} / "
                                         f"{_num(e.under_escalation)}"],
            [f"{LABELS['steps_needing_help']} (TP + FN)", e.tp + e.fn],
            [f"{LABELS['help_rate']}: {MEANINGS['help_rate']}", _pct(e.help_rate)],
            *([["confidence AURC (excess)", f"{e.aurc:.3f} ({_num(e.e_aurc, '.3f')})"]]
              if e.aurc is not None else []),
        ], [1])
        ctx["escalation_cost"] = _table(
            ["strategy", "cost"],
            [["this agent", f"{e.cost_agent:g}"], ["never ask", f"{e.cost_never_ask:g}"],
             ["always ask", f"{e.cost_always_ask:g}"], ["oracle", f"{e.cost_oracle:g}"]], [1],
            f"Cost = {e.cost_per_ask:g} per request for help + {e.cost_per_error:g} per "
            f"needed-but-unasked step. Regret {_num(e.regret)} (0 = oracle, 1 = the better "
            "of never/always asking).")
    esc = s.escalation
    if esc.reviews:
        ctx["reviews"] = _table(["checkpoint reviews", "count"], [
            ["reviews", esc.reviews], ["denied", esc.denials],
            ["wrong decisions approved", esc.wrong_approved],
            ["right decisions denied", esc.right_denied]], [1])
    if s.policies:
        ctx["policies"] = _table(
            ["policy", "episodes", "success (95% CI)", "reviews/ep", "human min/ep", "aborted",
             "frontier"],
            [[p.policy, p.episodes, "–" if p.success is None else
              f"{_pct(p.success)} [{_pct(p.success_lo)}, {_pct(p.success_hi)}]",
              f"{p.reviews_per_episode:.2f}", f"{p.human_minutes_per_episode:.2f}", p.aborted,
              "★" if p.on_frontier else ""] for p in s.policies], [1, 3, 4, 5])
    if s.agents is not None:
        ctx["agents"] = _table(*agent_rows(s.agents), [1, 4, 5, 6])
        ctx["agents_note"] = agent_note(s.agents)
    names = {"episode_wall_ms": "episode wall time (ms)",
             "episode_sim_seconds": "episode simulated time (s)",
             "episode_steps": "steps per episode", "episode_cost": "cost per episode",
             "step_harness_us": "harness time per step (µs)"}
    ctx["latency"] = _table(["measure", "P50", "P90", "P99"],
                            [[names.get(k, k), _g(p.p50), _g(p.p90), _g(p.p99)]
                             for k, p in s.latency.items()], [1, 2, 3]) if s.latency else None
    if r is not None and r.propagation is not None:
        ctx["propagation_lines"] = r.propagation.strongest
    ctx["horizon_notes"] = [f"{h.unit}: {h.note}" for h in (r.horizon_steps, r.horizon_time)
                            if h is not None and not h.km_t and h.note] if r else []

    ctx["judges"] = _judges(s)
    ctx["plots"] = _plots(s)
    return ctx


def _plots(s: RunSummary) -> dict[str, Plot]:
    r = s.reliability
    specs: list[tuple[str, str, str, Callable[[], Figure | None]]] = [
        ("node-accuracy", "Per-node accuracy",
         f"Each row is a decision node. Green square: {LABELS['accuracy_per_episode']} — "
         f"{MEANINGS['accuracy_per_episode']}; blue dot: {LABELS['accuracy']} — "
         f"{MEANINGS['accuracy']}; orange diamond: {LABELS['marginal']} — "
         f"{MEANINGS['marginal']}. A node that acts "
         "several times per episode sits lower per episode than per call; a diamond left of "
         "the dot means the node inherits errors from upstream.",
         lambda: plot_node_accuracy(s)),
        ("workflow", "Workflow graph",
         "The agent's workflow as observed: arrows are transitions, thicker = likelier "
         "(labels give the probability); node colour is its accuracy per episode, red = "
         "error-prone; the "
         "Success/Fail squares show where episodes end.", lambda: plot_workflow(s)),
        ("compounding", "Predicted vs observed success", _compounding_caption(s),
         lambda: plot_compounding(s)),
        ("propagation", "Error propagation",
         "Row: the node of the episode's first error; column: a node after it. Colour and "
         "top number: P(downstream wrong later | the first error was upstream); in brackets: "
         "P(downstream's own error | upstream right, nothing erred before). A large gap means "
         "errors propagate: where an upstream error makes at least half of the otherwise right "
         "downstream decisions wrong it is a knock-on, set apart from the shared-cause test. "
         "Blank: fewer than 5 episodes.",
         lambda: plot_propagation(s)),
        ("escalation", "Escalation confusion matrix",
         "Rows: whether the agent asked a human; columns: whether the step needed one. "
         "Dark cells on the diagonal (TP, TN) are good; FN is under-escalation, FP "
         "over-escalation. Colour is the share of the column.", lambda: plot_confusion(s)),
        ("risk-coverage", "Risk vs coverage",
         "Decisions sorted by the agent's stated confidence: keeping the most confident "
         "share (x), the line is the error rate among them (y). Low on the left means the "
         "confidence is a useful signal for when to ask." + (
             f" AURC {r.escalation.aurc:.3f}, excess {r.escalation.e_aurc:.3f}."
             if r is not None and r.escalation.aurc is not None
             and r.escalation.e_aurc is not None else ""),
         lambda: plot_risk_coverage(s)),
        ("policies", "Checkpoint policy frontier",
         "Each point is a checkpoint policy run on the same seeds: success (95% CI) against "
         "human minutes per episode. Filled points are on the frontier: no other policy is "
         "both as good and cheaper.", lambda: plot_policies(s)),
    ]
    if r is not None:
        for key, h in (("horizon-steps", r.horizon_steps), ("horizon-time", r.horizon_time)):
            if h is not None:
                what = "steps" if key == "horizon-steps" else "simulated time"
                specs.append((key, f"Success vs horizon ({what})", _horizon_caption(h),
                              lambda h=h: plot_horizon(h)))
    out = {}
    for pid, title, caption, make in specs:
        p = _plot(pid, title, caption, make)
        if p is not None:
            out[pid] = p
    return out


_ENV = Environment(loader=PackageLoader("trialrun", "templates"), autoescape=True,
                   trim_blocks=True, lstrip_blocks=True)


def render_html(s: RunSummary, created_at: str = "") -> str:
    """The page for a run summary, as one string."""
    ctx = build_context(s, created_at)
    return _ENV.get_template("report.html.j2").render(**ctx)


def write_html(store: Store, run_id: str, path: str | Path,
               summary: RunSummary | None = None) -> Path:
    """Write a stored run's self-contained HTML report to `path` (summarising the run unless
    its summary is given)."""
    from trialrun.analysis.data import load_run
    from trialrun.analysis.summary import summarize

    t0 = time.perf_counter()
    run = store.get_run(run_id)
    if summary is None:
        from trialrun.calibration import attach_judges

        summary = attach_judges(summarize(load_run(store, run_id)), store, run_id)
    html = render_html(summary, created_at=run.created_at)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    log.debug("HTML report for %s written in %.2f s", run_id, time.perf_counter() - t0)
    return path


# --------------------------------------------------------------------------------------------
# two runs compared (`trialrun diff --html`)


def plot_diff(r: Any) -> Figure | None:
    """B − A with its 95% CI: success, then each node's accuracy per episode."""
    from trialrun.analysis.diff import DIFF_LABELS

    rows = [(DIFF_LABELS["success"], r.success.delta, r.success.lo, r.success.hi,
             r.success.significant)]
    rows += [(f"node {n.node}", n.delta, n.lo, n.hi, n.significant) for n in r.nodes]
    rows = [x for x in rows if x[1] is not None]
    if not rows:
        return None
    rows = rows[::-1]  # success at the top
    fig, ax = _figure(7.2, 1.0 + 0.45 * len(rows))
    y = np.arange(len(rows))
    for yi, (_, d, lo, hi, sig) in zip(y, rows, strict=True):
        colour = (RED if d < 0 else GREEN) if sig else GREY
        lo, hi = (d, d) if lo is None else (lo, hi)
        ax.errorbar([100 * d], [yi], xerr=[[100 * max(0.0, d - lo)], [100 * max(0.0, hi - d)]],
                    fmt="o", color=colour, ecolor=colour, capsize=3, ms=6, elinewidth=1.6)
    ax.axvline(0, color=INK, linewidth=1, linestyle=":")
    ax.set_yticks(y, [x[0] for x in rows])
    ax.set_xlabel("B − A, percentage points (95% CI)")
    ax.grid(axis="x", color="#e2e8f0", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_title("What changed from run A to run B")
    return fig


def render_diff_html(r: Any) -> str:
    """The page for a `RunDiff` (trialrun.analysis.diff), as one string."""
    from trialrun.analysis.diff import (
        DIFF_LABELS,
        DIFF_MEANINGS,
        case_rows,
        measure_rows,
        node_rows,
    )

    s = r.success
    headline = _table(["measure", "A", "B", "B − A (95% CI)", "what it means"], [
        [DIFF_LABELS["success"], _prop(s.a), _prop(s.b),
         "–" if s.delta is None else f"{100 * s.delta:+.1f} pts" + (
             "" if s.lo is None else f" [{100 * s.lo:+.1f}, {100 * s.hi:+.1f}]")
         + f"; McNemar p {s.mcnemar_p:.3g}", DIFF_MEANINGS["success"]],
        [DIFF_LABELS["newly_failing"], "", "", str(s.newly_failing),
         DIFF_MEANINGS["newly_failing"]],
        [DIFF_LABELS["newly_passing"], "", "", str(s.newly_passing),
         DIFF_MEANINGS["newly_passing"]]], [3])
    ctx = {
        "r": r, "headline": headline,
        "nodes": _table(*node_rows(r), [1, 2, 3, 4, 5, 6],
                        f"{DIFF_LABELS['accuracy_per_episode'].capitalize()}: "
                        f"{DIFF_MEANINGS['accuracy_per_episode']}. B − A: "
                        f"{DIFF_MEANINGS['ci']}. McNemar p: {DIFF_MEANINGS['mcnemar_p']}.")
        if r.nodes else None,
        "measures": _table(*measure_rows(r), [1, 2, 3]),
        "failing": _table(*case_rows(r.newly_failing)) if r.newly_failing else None,
        "passing": _table(*case_rows(r.newly_passing)) if r.newly_passing else None,
        "plot": _plot("diff", "What changed", "Each row: B − A with its 95% CI (paired "
                      "bootstrap over task × seed groups). Red: significantly worse; green: "
                      "significantly better (McNemar, Holm-corrected for nodes); grey: within "
                      "chance.", lambda: plot_diff(r)),
    }
    return _ENV.get_template("diff.html.j2").render(**ctx)


def write_diff_html(r: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_diff_html(r), encoding="utf-8")
    return path
