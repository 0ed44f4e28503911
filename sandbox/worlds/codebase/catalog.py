"""The bundled repositories and their seeded bugs: what a codebase task can name.

Each folder of `repos/` is one small, correct Python repository (`src/`, visible tests
included), its hidden tests (`hidden/`, added only when grading) and `bugs.yaml`: per bug the
issue text an agent reads, the one edit that plants it, and the hidden tests that must go
from failing to passing. Kept apart from the world so that tests, task generation and the
loader can read the catalogue without opening a sandbox.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

REPOS_DIR = Path(__file__).parent / "repos"


class Seed(BaseModel):
    """The edit that plants a bug: `find` (exactly once in `file`) becomes `replace`."""

    model_config = ConfigDict(extra="forbid")

    file: str
    find: str
    replace: str


class Bug(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    issue: str
    seed: Seed
    fail_to_pass: list[str] = Field(min_length=1)


class RepoManifest(BaseModel):
    """A repository's `bugs.yaml`."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    bugs: list[Bug]


@dataclass
class Repo:
    name: str
    description: str
    files: dict[str, str]  # the correct repository, visible tests included
    hidden: dict[str, str]  # hidden test files, added only for grading
    bugs: dict[str, Bug] = field(default_factory=dict)

    def seeded(self, bug: Bug) -> dict[str, str]:
        """The repository with `bug` planted (its find text must occur exactly once)."""
        files = dict(self.files)
        text = files[bug.seed.file]
        if text.count(bug.seed.find) != 1:
            raise ValueError(f"{self.name}/{bug.id}: seed text must occur exactly once in "
                             f"{bug.seed.file}")
        files[bug.seed.file] = text.replace(bug.seed.find, bug.seed.replace)
        return files

    def test_files(self) -> dict[str, str]:
        return {p: t for p, t in self.files.items() if p.startswith("tests/")}


def _read_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


@cache
def load_repo(name: str) -> Repo:
    root = REPOS_DIR / name
    if not (root / "bugs.yaml").is_file():
        raise LookupError(f"unknown repo {name!r}; known: {', '.join(repo_names())}")
    manifest = RepoManifest.model_validate(yaml.safe_load((root / "bugs.yaml").read_text()))
    return Repo(name, manifest.description, _read_tree(root / "src"), _read_tree(root / "hidden"),
                {b.id: b for b in manifest.bugs})


def repo_names() -> list[str]:
    return sorted(p.name for p in REPOS_DIR.iterdir() if (p / "bugs.yaml").is_file())


def catalog() -> list[tuple[str, str]]:
    """Every (repo, bug) pair, in a stable order."""
    return [(r, b) for r in repo_names() for b in load_repo(r).bugs]


def tar_files(files: dict[str, str]) -> bytes:
    """A tarball of `files` ({path: text}) with fixed modes and times, for `Sandbox.restore`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
