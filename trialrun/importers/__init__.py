"""Importers: runs made by other harnesses, read into trialrun's records (`trialrun import`).

    tau-bench   τ-bench result files (a JSON list of {task_id, trial, reward, info, traj}) and
                τ²-bench results (a JSON object with tasks and simulations)
    inspect     Inspect AI eval logs (.json, or the .eval zip)
    otel        OpenTelemetry GenAI spans exported as JSON (OTLP/JSON, JSON lines, or the SDK
                console exporter's output)

Each registers itself as a plugin of kind `importer` when its module is imported; the base
class and the shared pieces (gold-action grading, storing a run) are in `base`.
See docs/import.md for what each format's fields become.
"""

from trialrun.importers.base import Importer, ImportFormatError, import_files

# Importing the package registers every built-in format (the registry's `importer` table
# names these modules, so `resolve("importer", "otel")` lands here too).
from trialrun.importers import inspect_log, otel, tau_bench  # noqa: E402, F401  isort: skip

__all__ = ["ImportFormatError", "Importer", "import_files"]
