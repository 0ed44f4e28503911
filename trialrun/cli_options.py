"""Command-line options that several command modules take, defined once (typer only: the
command modules import this at the top)."""

from __future__ import annotations

from typing import Annotated

import typer

from trialrun.defaults import DEFAULT_DB

__all__ = ["DEFAULT_DB", "DbOption"]

DbOption = Annotated[str, typer.Option(
    "--db", envvar="TRIALRUN_DB", help="SQLAlchemy URL of the store.")]
