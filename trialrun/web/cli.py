"""`trialrun serve`: the web app on 127.0.0.1 by default; any other host needs a token.

Only typer at the top: the app, Starlette and uvicorn are imported when the command runs,
so `trialrun --help` does not pay for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trialrun.cli_options import DEFAULT_DB, DbOption


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: only this machine can connect."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str, typer.Option(help="address to bind; anything but loopback needs "
                                      "--token")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on")] = 8000,
    db: DbOption = DEFAULT_DB,
    token: Annotated[str | None, typer.Option(
        envvar="TRIALRUN_TOKEN", show_default=False,
        help="a secret every request must carry (login form or Authorization: Bearer); "
             "required to bind a non-loopback host")] = None,
    resume_answered: Annotated[bool, typer.Option(
        "--resume-answered", help="go on with a run \"waiting for review\" once every waiting "
        "item is answered, in this process (runs its agents, with this environment's keys); "
        "off by default: `trialrun run --resume RUN` does it")] = False,
    regressions: Annotated[Path, typer.Option(
        help="where failures marked in the app are written as regression cases (what "
             "`trialrun run DIR --gate 'success>=1'` runs)")] = Path("regressions"),
    second_opinions: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="share of answered items offered to a second reviewer, for "
        "reviewer-to-reviewer agreement (0: none)")] = 0.1,
) -> None:
    """The web app: review queue (approve/deny paused decisions, take over), runs and
    episodes with state diffs and live progress, labelling, reviewer agreement."""
    if not is_loopback(host) and not token:
        typer.echo(f"error: --host {host} is reachable from other machines: set --token or "
                   "TRIALRUN_TOKEN (or bind 127.0.0.1)", err=True)
        raise typer.Exit(2)
    import uvicorn

    from trialrun.web.app import create_app

    app = create_app(db, token, resume_answered=resume_answered, regressions=regressions,
                     second_opinions=second_opinions)
    typer.echo(f"trialrun serve: http://{host}:{port}/ (store {app.state.store.safe_url}"
               + ("; resumes answered runs" if resume_answered else "") + ")", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
