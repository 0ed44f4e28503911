"""One exception hierarchy. The CLI turns each into a one-line message in one place.

    TrialrunError
    ├── PluginNotFound      a name in YAML or on the command line that resolves to nothing
    ├── InvalidScenario     a scenario file with problems (see scenarios.loader.ScenarioError)
    ├── NotFound            a run or episode id that is not in the store
    ├── BadInput            a command-line value that cannot be used (says what was expected)
    ├── StoreError          a store that cannot be opened, read or written (says what to do)
    │   └── RunBusy         a run another process is running (says which, where)
    └── InfraError          a fault of the harness, a model or a container: retried, never scored
"""

from __future__ import annotations


class TrialrunError(Exception):
    """Base of every error trialrun raises on purpose."""


class PluginNotFound(TrialrunError, LookupError):
    """A plugin name that resolves to nothing; the message names what is known."""


class InvalidScenario(TrialrunError):
    """A scenario that does not validate."""


class NotFound(TrialrunError, KeyError):
    """A run or episode that is not in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BadInput(TrialrunError):
    """A command-line value that cannot be used; the message says what was expected."""


class StoreError(TrialrunError):
    """A store that cannot be opened, read or written: a missing folder, a read-only,
    corrupted or full disk, a newer schema. The message says what is wrong and what to do;
    finished episodes stay stored."""


class RunBusy(StoreError):
    """A run that another process holds (two `--resume` of one run at once)."""


class InfraError(TrialrunError):
    """A fault of the harness, a model or a container: retried, recorded, never scored."""
