"""The codebase world: small Python repositories with seeded bugs, fixed in a sandbox.

One folder, one world: `catalog.py` (the bundled repositories in `repos/` and their bugs),
`world.py` (the world and its tools), `grading.py` (SWE-bench-style hidden-test grading) and
`agent.py` (the scripted reference agent). Importing this package registers the world
`codebase` and the agent `scripted:codebase`.
"""

from trialrun.sandbox.worlds.codebase.agent import (
    ScriptedCodebaseAgent,
    called_names,
    function_body,
    mutations,
    unique_edit,
)
from trialrun.sandbox.worlds.codebase.catalog import (
    REPOS_DIR,
    Bug,
    Repo,
    catalog,
    load_repo,
    repo_names,
    tar_files,
)
from trialrun.sandbox.worlds.codebase.grading import GRADE_CMD, grade, parse_results
from trialrun.sandbox.worlds.codebase.world import TEST_CMD, CodebaseWorld

__all__ = [
    "GRADE_CMD",
    "REPOS_DIR",
    "TEST_CMD",
    "Bug",
    "CodebaseWorld",
    "Repo",
    "ScriptedCodebaseAgent",
    "called_names",
    "catalog",
    "function_body",
    "grade",
    "load_repo",
    "mutations",
    "parse_results",
    "repo_names",
    "tar_files",
    "unique_edit",
]
