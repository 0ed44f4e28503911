"""Bounds every entry point shares (the schema, the command line, the plan): one definition
each, in a module that imports nothing, so the CLI can use them without loading the schema."""

MAX_TRIALS = 10_000  # trials per (task, seed); bounds `--trials` too
MAX_SEEDS = 100_000  # seeds of one scenario; bounds `--seeds` too
