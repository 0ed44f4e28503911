"""The web app over the store: the review queue, runs and episodes (server-rendered pages).

Pages: the queue and an item (the proposed action, why, what it would change in the world,
approve / deny with retry, take over with a corrected action or abort as the scenario
allows), second opinions and reviewer agreement (/reviewers), runs (live progress) and
episodes (state diffs step by step, golden labels, marking a regression case). See
docs/web.md; the states come from trialrun/web/states.py, the deny choices and takeover
check from trialrun/web/takeover.py, the server's own resumes from trialrun/web/resumer.py.

Trust: agent and scenario text is untrusted, so every page goes through Jinja2 with
autoescape on and a Content-Security-Policy that allows only this app's own script and
stylesheet (no inline script, no inline style, nothing from elsewhere).

Who may do what: with a token, every request carries it (the login form's HttpOnly cookie, or
`Authorization: Bearer`). Every POST carries a CSRF token equal to the `trialrun_csrf` cookie
(double submit; the cookie is SameSite=Strict, so a forged cross-site POST has neither) and
an Origin, if the browser sends one, of this app: else 403. An answer goes through
`store.answer_review`, which refuses a second answer: the page says "already answered" (409).

Cost: each page is a handful of indexed queries with LIMIT/OFFSET; no page loads a whole run
(a 20,000-episode run page is tens of milliseconds).
"""

from __future__ import annotations

import hmac
import json
import math
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from trialrun import store as st
from trialrun.errors import NotFound
from trialrun.store import ReviewRow, Store
from trialrun.web.labelling import criteria
from trialrun.web.states import StateCache

HERE = Path(__file__).parent
PAGE = 50  # rows per page
CSRF_COOKIE, AUTH_COOKIE = "trialrun_csrf", "trialrun_token"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
OPEN_PATHS = ("/login", "/static/", "/favicon.ico")

_env = Environment(loader=FileSystemLoader(HERE / "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   trim_blocks=True, lstrip_blocks=True)


def _pretty(value: str | None) -> str:
    if not value:
        return ""
    try:
        return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except ValueError:
        return value


def _compact(value: Any) -> str:
    """A tool's output on one line (wrapped by the page), for the steps table."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        return str(value)


_env.filters["pretty"] = _pretty
_env.filters["compact"] = _compact


class _Guard(BaseHTTPMiddleware):
    """Token check, the CSRF cookie, and the security headers on every response."""

    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        csrf = request.cookies.get(CSRF_COOKIE) or ""
        fresh = len(csrf) < 32
        request.state.csrf = secrets.token_urlsafe(32) if fresh else csrf
        if self.token and not request.url.path.startswith(OPEN_PATHS) \
                and not self._authorized(request):
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                response: Response = RedirectResponse(
                    "/login?" + urlencode({"next": request.url.path}), status_code=303)
            else:
                response = PlainTextResponse("a token is required", status_code=401,
                                             headers={"WWW-Authenticate": "Bearer"})
        elif request.method == "POST" and not _same_origin(request):
            response = PlainTextResponse("cross-site request refused", status_code=403)
        else:
            response = await call_next(request)
        if fresh:
            response.set_cookie(CSRF_COOKIE, request.state.csrf, httponly=True,
                                samesite="strict", secure=request.url.scheme == "https")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Content-Security-Policy", CSP)  # the report has its own
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def _authorized(self, request: Request) -> bool:
        assert self.token
        given = request.cookies.get(AUTH_COOKIE, "")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())


def _same_origin(request: Request) -> bool:
    """A browser's Origin (or Referer) must name this app; tools that send neither pass on
    to the CSRF token check."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin != "null"
    u = urlsplit(origin)
    return f"{u.scheme}://{u.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


async def _form(request: Request) -> dict[str, str] | Response:
    """The POSTed form, or a 403 response when its CSRF token is not the cookie's."""
    form = await request.form()
    sent = str(form.get("csrf", ""))
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        return _page(request, "error.html.j2", 403, title="Forbidden",
                     message="the form's CSRF token is missing or wrong: reload the page and "
                             "try again")
    return {k: str(v) for k, v in form.items()}


def _page(request: Request, template: str, code: int = 200, **ctx: Any) -> HTMLResponse:
    html = _env.get_template(template).render(csrf=request.state.csrf, path=request.url.path,
                                              login=request.app.state.token is not None, **ctx)
    return HTMLResponse(html, status_code=code)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _page(request, "error.html.j2", 404, title="Not found", message=str(exc))


def _int(request: Request, name: str, default: int = 1) -> int:
    try:
        return max(1, int(request.query_params.get(name, default)))
    except ValueError:
        return default


def _pager(request: Request, page: int, total: int) -> dict[str, Any]:
    pages = max(1, math.ceil(total / PAGE))
    params = dict(request.query_params)

    def link(p: int) -> str:
        return "?" + urlencode({**params, "page": p})

    return {"page": page, "pages": pages, "total": total,
            "prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < pages else None}


def _store(request: Request) -> Store:
    return request.app.state.store


def _reviewer(form: dict[str, str]) -> str:
    """Who sends a form: the name typed in it, trimmed to what the store keeps."""
    return form.get("reviewer", "").strip()[:100]


# --- pages ----------------------------------------------------------------------------
async def home(request: Request) -> Response:
    return RedirectResponse("/reviews", status_code=303)


async def favicon(request: Request) -> Response:
    return Response((HERE / "static" / "favicon.svg").read_bytes(),
                    media_type="image/svg+xml")


async def login(request: Request) -> Response:
    nxt = request.query_params.get("next", "/")
    if request.method == "GET":
        return _page(request, "login.html.j2", title="Sign in", next=nxt)
    form = await _form(request)
    if isinstance(form, Response):
        return form
    token = request.app.state.token or ""
    if not hmac.compare_digest(form.get("token", "").encode(), token.encode()):
        return _page(request, "login.html.j2", 403, title="Sign in", next=nxt,
                     error="wrong token")
    target = form.get("next", "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(AUTH_COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


async def reviews(request: Request) -> Response:
    page = _int(request, "page")
    status = request.query_params.get("status", "pending")
    if status == "second":
        items, total = _second_queue(request, page)
    else:
        items, total = st.review_page(_store(request), None if status == "all" else status,
                                      PAGE, (page - 1) * PAGE)
    return _page(request, "reviews.html.j2", title="Review queue", items=items,
                 status=status, pager=_pager(request, page, total),
                 decisions={i.id: _label(i.decision) for i in items})


def _second_queue(request: Request, page: int) -> tuple[list[ReviewRow], int]:
    """Answered items in the second-opinion sample that have none yet and that someone
    other than you answered, oldest first."""
    store, rate, me = _store(request), request.app.state.second_rate, _name(request)
    if rate <= 0:
        return [], 0
    picked: list[ReviewRow] = []
    offset, batch = 0, 500
    while True:
        rows, _ = st.answered_items(store, batch, offset)
        picked += [r for r in rows if in_sample(r.id, rate) and r.reviewer != me
                   and st.second_opinion(store, r.id) is None]
        offset += batch
        if len(rows) < batch or len(picked) >= page * PAGE:
            break
    return picked[(page - 1) * PAGE: page * PAGE], len(picked)


def _decision(decision_json: str) -> Any:
    from trialrun.trajectory import Decision

    try:
        return Decision.model_validate_json(decision_json)
    except ValueError:
        return Decision(kind="message", node="?", text=decision_json)


def _label(decision_json: str) -> str:
    from trialrun.trajectory import Decision

    try:
        return Decision.model_validate_json(decision_json).label()
    except ValueError:
        return decision_json


def _name(request: Request) -> str:
    return request.cookies.get("trialrun_reviewer", "")


def _plan(request: Request, run_id: str) -> Any:
    """The run's plan, rebuilt from its stored scenarios (cached with the states)."""
    return request.app.state.states.plan(run_id)


def _key_of(item: ReviewRow, episode: Any) -> Any:
    from trialrun.trajectory import EpisodeKey

    if episode is not None:
        return EpisodeKey(scenario=episode.scenario, task=episode.task, seed=episode.seed,
                          trial=episode.trial)
    scenario, task, seed, trial = item.episode_key.rsplit("/", 3)
    return EpisodeKey(scenario=scenario, task=task, seed=int(seed[1:]), trial=int(trial[1:]))


def _deny_options(request: Request, item: ReviewRow, episode: Any) -> Any:
    from trialrun.web.takeover import DenyOptions, deny_options

    try:
        key = _key_of(item, episode)
        plan = _plan(request, item.run_id).scenarios[key.scenario]
        return deny_options(plan, key)
    except Exception as e:  # noqa: BLE001 - the item can still be approved or denied
        return DenyOptions(default="", choices=[], note=f"the run's scenario cannot be "
                           f"rebuilt ({type(e).__name__}: {e}); a deny does what its "
                           f"on_deny says"[:300])


def in_sample(item_id: str, rate: float) -> bool:
    """Whether an item is in the second-opinion sample: a fixed hash of its id, so every
    server and every page agree."""
    import hashlib

    h = int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:8], "big")
    return h < rate * 2 ** 64


async def _item_page(request: Request, item: ReviewRow, code: int = 200,
                     errors: list[str] | None = None, form: dict[str, str] | None = None
                     ) -> Response:
    store = _store(request)
    episode = st.episode_by_key(store, item.run_id, item.episode_key)
    result = store.load_episode(episode.id) if episode is not None else None
    steps = [s for s in result.steps if s.index <= item.step] if result is not None else []
    nxt = st.next_review(store, exclude=item.id)
    me = _name(request)
    proposed = _decision(item.decision)
    second = st.second_opinion(store, item.id)
    # A second opinion is given blind: the first answer is hidden until it is in.
    want_second = (item.status == "answered" and second is None
                   and request.query_params.get("second") == "1" and item.reviewer != me)
    states = None
    if steps and steps[-1].index == item.step:
        # What the action would do if approved, whatever the answer was: the record up to
        # the item, its step as it was proposed (nothing after it, no answer).
        from trialrun.trajectory import CheckpointEvent

        asked = steps[-1].model_copy(update={"result": None, "checkpoint": CheckpointEvent(
            policy=episode.policy, reason=item.reason, reviewed=False)})
        prefix = result.model_copy(update={"steps": [*steps[:-1], asked]})
        states = await request.app.state.states.get(
            f"{episode.id}@{item.step}", item.run_id, prefix,
            st.episode_reviews(store, item.run_id, item.episode_key), {item.step})
    if want_second:
        steps = steps[:-1]  # the proposed step's record carries the first answer
    return _page(request, "review.html.j2", code, title=f"Review {item.id}", item=item,
                 late=item.status == "pending" and item.overdue,
                 label=_label(item.decision), episode=episode, steps=steps, next=nxt,
                 reviewer=me, states=states, deny=_deny_options(request, item, episode)
                 if item.status == "pending" else None,
                 takeover=_label(item.takeover) if item.takeover else "",
                 agent_tool=proposed.tool or "", agent_args=json.dumps(
                     proposed.args, indent=2, ensure_ascii=False) if proposed.args else "{}",
                 errors=errors or [], form=form or {}, second=second,
                 want_second=want_second,
                 sampled=in_sample(item.id, request.app.state.second_rate))


async def review_item(request: Request) -> Response:
    item = st.get_review(_store(request), request.path_params["item_id"])
    if item is None:
        return _page(request, "error.html.j2", 404, title="Not found",
                     message="no such review item")
    return await _item_page(request, item)


async def answer(request: Request) -> Response:
    form = await _form(request)
    if isinstance(form, Response):
        return form
    store = _store(request)
    item_id = request.path_params["item_id"]
    verdict = form.get("verdict")
    reviewer = _reviewer(form)
    if verdict not in ("approve", "deny") or not reviewer:
        return _page(request, "error.html.j2", 400, title="Bad request",
                     message="an answer needs a verdict (approve or deny) and your name")
    late = st.get_review(store, item_id)
    if late is not None and late.overdue:  # the scenario's fallback answers it, not a person
        return _page(request, "answered.html.j2", 409, title="Past its deadline", item=late,
                     late=True, next=st.next_review(store, exclude=late.id))
    action, takeover = "", None
    if verdict == "deny" and late is not None and late.status == "pending":
        deny = _deny_options(request, late, st.episode_by_key(store, late.run_id,
                                                              late.episode_key))
        action = form.get("action", "") or deny.default
        if deny.choices and action not in deny.choices:
            return await _item_page(request, late, 400, [
                f"this scenario allows {', '.join(deny.choices)} on a deny, not {action!r}"],
                form)
        if action == "takeover" and form.get("tool", ""):  # none: the world's own action
            from trialrun.trajectory import Decision
            from trialrun.web.takeover import check_takeover

            node = Decision.model_validate_json(late.decision).node
            decision, errors = check_takeover(deny, node, form.get("tool", ""),
                                              form.get("args", ""))
            if decision is None:
                return await _item_page(request, late, 400, errors, form)
            takeover = decision.model_dump_json(exclude_defaults=True)
        if action == deny.default and takeover is None:
            action = ""  # the scenario's own on_deny: nothing to record beyond the deny
    # `answer_review` is one conditional UPDATE: of two answers to an item, from this server
    # or another process, only the first is applied (with its action and takeover, whole).
    try:
        item = store.answer_review(item_id, verdict == "approve", reviewer,
                                   form.get("comment", "").strip()[:2000], action=action,
                                   takeover=takeover)
    except NotFound:
        item = st.get_review(store, item_id)
        if item is None:
            raise
        return _page(request, "answered.html.j2", 409, title="Already answered", item=item,
                     next=st.next_review(store, exclude=item.id))
    nxt = st.next_review(store, exclude=item.id)
    return redirect_as(reviewer, f"/reviews/{nxt.id}" if nxt else
                       "/reviews?" + urlencode({"answered": item.id}))


def redirect_as(reviewer: str, url: str) -> Response:
    """After a form a person sent: on to `url`, their name kept for the next form."""
    response = RedirectResponse(url, status_code=303)
    response.set_cookie("trialrun_reviewer", reviewer, httponly=True, samesite="strict")
    return response


async def second_opinion(request: Request) -> Response:
    """A second reviewer's answer to an answered item: stored apart, never applied."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    store = _store(request)
    item = st.get_review(store, request.path_params["item_id"])
    reviewer = _reviewer(form)
    verdict = form.get("verdict")
    if item is None:
        return _page(request, "error.html.j2", 404, title="Not found",
                     message="no such review item")
    if verdict not in ("approve", "deny") or not reviewer:
        return _page(request, "error.html.j2", 400, title="Bad request",
                     message="a second opinion needs a verdict (approve or deny) and your name")
    if item.status != "answered":
        return _page(request, "error.html.j2", 409, title="Not answered",
                     message=f"item {item.id} is {item.status}: a second opinion is given on "
                             "an item a person has answered")
    if reviewer == item.reviewer:
        return _page(request, "error.html.j2", 409, title="Same reviewer",
                     message=f"{reviewer} gave the first answer: a second opinion comes from "
                             "another reviewer")
    row = st.add_second_opinion(store, item, verdict == "approve", reviewer,
                                form.get("comment", "").strip()[:2000])
    if row is None:
        return _page(request, "error.html.j2", 409, title="Already has a second opinion",
                     message=f"item {item.id} already has a second opinion; yours was not "
                             "stored")
    return redirect_as(reviewer, "/reviews?status=second")


async def runs(request: Request) -> Response:
    page = _int(request, "page")
    from trialrun.run_lock import shown_status

    store = _store(request)
    rows, total = st.runs_page(store, PAGE, (page - 1) * PAGE)
    return _page(request, "runs.html.j2", title="Runs", rows=rows,
                 status={r.id: shown_status(r, store.lease_s) for r, _ in rows},
                 pager=_pager(request, page, total))


SUCCESS = {"yes": True, "no": False, "unscored": None}


async def run(request: Request) -> Response:
    store = _store(request)
    row = store.get_run(request.path_params["run_id"])  # NotFound: a 404 page
    page = _int(request, "page")
    scenario = request.query_params.get("scenario") or None
    success = request.query_params.get("success", "any")
    episodes, total = st.episode_page(store, row.id, PAGE, (page - 1) * PAGE, scenario,
                                      SUCCESS.get(success, "any"))
    counts = st.run_counts(store, row.id)
    return _page(request, "run.html.j2", title=f"Run {row.id}", run=row, counts=counts,
                 episodes=episodes, pager=_pager(request, page, total), scenario=scenario,
                 success=success, targets=json.loads(row.targets),
                 resumes=request.app.state.resumer is not None,
                 criteria=sorted({r.criterion for r in st.labels_of(store, run_id=row.id)}),
                 marks=st.regression_marks(store, row.id), poll_ms=request.app.state.poll_ms)


async def run_report(request: Request) -> Response:
    """The full HTML report with its plots (self-contained: its own inline styles, so
    served under its own, looser policy that still allows no script)."""
    from trialrun.analysis.data import load_run
    from trialrun.analysis.summary import summarize
    from trialrun.html_report import render_html

    store = _store(request)
    row = store.get_run(request.path_params["run_id"])  # NotFound: a 404 page
    html = render_html(summarize(load_run(store, row.id)), row.created_at)
    response = HTMLResponse(html)
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
    return response


async def run_progress(request: Request) -> Response:
    """A run's counts as JSON, for the run page's poll (one query)."""
    store = _store(request)
    row = store.get_run(request.path_params["run_id"])  # NotFound: a 404 page
    return JSONResponse(st.run_progress(store, row.id))


async def episode(request: Request, code: int = 200, message: str = "",
                  errors: list[str] | None = None) -> Response:
    store = _store(request)
    row = store.get_episode(request.path_params["episode_id"])  # NotFound: a 404 page
    result = store.load_episode(row.id)
    model_calls = sum(len(s.decision.model_calls) for s in result.steps)
    answers = [s for s in result.steps if s.checkpoint is not None and s.checkpoint.reviewed]
    items = st.episode_reviews(store, row.run_id, row.key)
    states = await request.app.state.states.get(row.id, row.run_id, result, items) \
        if result.steps else None
    return _page(request, "episode.html.j2", code, title=f"Episode {row.id}", ep=row,
                 result=result, model_calls=model_calls, answers=answers,
                 items=items, takeovers={i.step: _label(i.takeover) for i in items
                                         if i.takeover},
                 states=states, labels=st.labels_of(store, episode_id=row.id),
                 criteria=criteria(store, row.run_id, result),
                 mark=st.regression_mark(store, row.id), reviewer=_name(request),
                 regressions=request.app.state.regressions, message=message,
                 errors=errors or [])


async def reviewers(request: Request) -> Response:
    """How reviewers do: their answers against the world's ground truth, and against each
    other (second opinions)."""
    from trialrun.analysis.reviewers import MEANINGS, reviewer_agreement, reviewer_stats

    store = _store(request)
    run_id = request.query_params.get("run") or None
    if run_id:
        run_id = store.get_run(run_id).id
    return _page(request, "reviewers.html.j2", title="Reviewers", run_id=run_id,
                 rows=reviewer_stats(store, run_id), meanings=MEANINGS,
                 agreement=reviewer_agreement(store, run_id),
                 pairs=st.second_opinion_pairs(store, run_id)[-50:],
                 rate=request.app.state.second_rate)


def create_app(db: str = st.DEFAULT_DB, token: str | None = None, *,
               resume_answered: bool = False, regressions: str | Path = "regressions",
               second_opinions: float = 0.1, resume_interval_s: float = 2.0,
               poll_ms: int = 2000) -> Starlette:
    """The app over the store at `db`; with `token`, every request must carry it. With
    `resume_answered`, runs whose reviews are all answered go on by themselves (see
    trialrun/web/resumer.py). Regression cases marked in the app are written to
    `regressions`; `second_opinions` is the share of answered items offered to a second
    reviewer."""
    from contextlib import asynccontextmanager

    from trialrun.web.labelling import golden, label, mark_regression
    from trialrun.web.resumer import Resumer

    store = Store(db)
    resumer = Resumer(store, resume_interval_s) if resume_answered else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        if resumer is not None:
            resumer.start()
        try:
            yield
        finally:
            if resumer is not None:
                resumer.close()

    app = Starlette(routes=[
        Route("/", home),
        Route("/favicon.ico", favicon),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/reviews", reviews),
        Route("/reviewers", reviewers),
        Route("/reviews/{item_id}", review_item),
        Route("/reviews/{item_id}/answer", answer, methods=["POST"]),
        Route("/reviews/{item_id}/second", second_opinion, methods=["POST"]),
        Route("/runs", runs),
        Route("/runs/{run_id}", run),
        Route("/runs/{run_id}/progress", run_progress),
        Route("/runs/{run_id}/report", run_report),
        Route("/runs/{run_id}/golden", golden),
        Route("/episodes/{episode_id}", episode),
        Route("/episodes/{episode_id}/label", label, methods=["POST"]),
        Route("/episodes/{episode_id}/regress", mark_regression, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ], middleware=[Middleware(_Guard, token=token)],
        exception_handlers={NotFound: _not_found}, lifespan=lifespan)
    app.state.store = store
    app.state.token = token
    app.state.states = StateCache(store)
    app.state.resumer = resumer
    app.state.regressions = str(regressions)
    app.state.second_rate = max(0.0, min(1.0, second_opinions))
    app.state.poll_ms = poll_ms
    return app
