"""`trialrun serve`: the web app on 127.0.0.1 by default; any other host needs a token.

Only typer at the top: the app, Starlette and uvicorn are imported when the command runs,
so `trialrun --help` does not pay for them.
"""

from __future__ import annotations

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
) -> None:
    """The web app: review queue (approve/deny paused decisions), runs and episodes."""
    if not is_loopback(host) and not token:
        typer.echo(f"error: --host {host} is reachable from other machines: set --token or "
                   "TRIALRUN_TOKEN (or bind 127.0.0.1)", err=True)
        raise typer.Exit(2)
    import uvicorn

    from trialrun.web.app import create_app

    app = create_app(db, token)
    typer.echo(f"trialrun serve: http://{host}:{port}/ (store {app.state.store.safe_url})",
               err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
