"""`trialrun serve`: the web app over the store — the review queue, runs and episodes.

`trialrun.web.app.create_app(db, token)` builds the Starlette app; `trialrun.web.cli.serve`
is the command (imports inside, so `trialrun --help` stays fast). See docs/web.md.
"""
