"""`trialrun sandbox build | prune | ls`: the sandbox image and trialrun's containers."""

from __future__ import annotations

import time

import typer

app = typer.Typer(help="Sandbox image and containers.", no_args_is_help=True)


def _fail(msg: str) -> None:
    typer.secho(msg, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@app.command()
def build(
    method: str = typer.Option(
        "auto", help="auto (debootstrap when installed and root, else dockerfile), "
        "debootstrap (no registry needed) or dockerfile"
    ),
    force: bool = typer.Option(False, help="rebuild even if the image exists"),
    mirror: str = typer.Option(None, help="Debian mirror URL for debootstrap"),
) -> None:
    """Build the sandbox base image locally (skipped if the tag exists)."""
    from trialrun.sandbox.backend import SandboxFault
    from trialrun.sandbox.image import build_base_image

    t0 = time.monotonic()
    try:
        tag = build_base_image(method=method, force=force, mirror=mirror, log=typer.echo)
    except (SandboxFault, ValueError) as e:
        _fail(str(e))
    typer.echo(f"{tag} ready in {time.monotonic() - t0:.1f}s")


def _containers(all_runs: bool = True):
    from trialrun.sandbox.backend import SandboxUnavailable
    from trialrun.sandbox.docker_backend import LABEL, client

    try:
        return client().containers.list(all=True, filters={"label": LABEL})
    except SandboxUnavailable as e:
        _fail(str(e))


@app.command("ls")
def ls() -> None:
    """List trialrun's containers: name, run, episode, state, owner alive, expiry."""
    from trialrun.sandbox.docker_backend import owner_alive

    rows = _containers()
    if not rows:
        typer.echo("no trialrun containers")
        return
    now = time.time()
    typer.echo(f"{'NAME':48} {'RUN':16} {'EPISODE':24} {'STATE':9} {'OWNER':7} EXPIRES")
    for c in rows:
        lab = c.labels
        alive = owner_alive(lab.get("trialrun.owner", ""))
        owner = {True: "alive", False: "dead", None: "remote"}[alive]
        left = float(lab.get("trialrun.expires", now)) - now
        expires = f"in {left:.0f}s" if left > 0 else "expired"
        episode = lab.get("trialrun.episode") or ("(pool)" if lab.get("trialrun.pool") else "")
        typer.echo(f"{c.name[:48]:48} {lab.get('trialrun.run', '')[:16]:16} {episode[:24]:24} "
                   f"{c.status:9} {owner:7} {expires}")


@app.command()
def prune(
    all_: bool = typer.Option(False, "--all", help="also containers of live runs"),
    run: str = typer.Option(None, help="only containers of this run id"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list, do not remove"),
) -> None:
    """Remove containers that dead (e.g. SIGKILLed) or expired runs left behind."""
    from trialrun.sandbox.docker_backend import owner_alive, remove_container

    now = time.time()
    removed = kept = 0
    for c in _containers():
        lab = c.labels
        if run is not None and lab.get("trialrun.run") != run:
            continue
        expired = float(lab.get("trialrun.expires", 0)) <= now
        alive = owner_alive(lab.get("trialrun.owner", ""))
        # A live run's containers stay (also while "created": it is starting them).
        if all_ or run is not None or expired or alive is False:
            if not dry_run:
                remove_container(c.id)
            typer.echo(f"{'would remove' if dry_run else 'removed'} {c.name}")
            removed += 1
        else:
            kept += 1
    typer.echo(f"{removed} removed, {kept} kept (owned by live runs; --all removes them too)")


if __name__ == "__main__":
    app()
