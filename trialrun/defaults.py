"""Defaults and bounds every entry point shares (the store, the schema, the command line, the
plan): one definition each, in a module that imports nothing, so that `trialrun --help`
loads no schema and no database driver."""

DEFAULT_DB = "sqlite:///trialrun.db"  # the store when --db / TRIALRUN_DB say nothing
MAX_TRIALS = 10_000  # trials per (task, seed); bounds `--trials` too
MAX_SEEDS = 100_000  # seeds of one scenario; bounds `--seeds` too
