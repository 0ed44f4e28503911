"""Packaging tells the truth: every third-party package the code imports is declared in
pyproject.toml, and every declared package is imported somewhere (a fresh install then has
exactly what `trialrun` needs)."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import tomllib
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ["trialrun", "agents", "graders", "replay", "scenarios", "sandbox"]
DATA = ROOT / "sandbox" / "worlds" / "codebase" / "repos"  # code for agents to fix, not ours


def _imports(folders: list[str]) -> set[str]:
    """Every module imported (dotted: namespace packages such as `langgraph` are split over
    several distributions, so the top-level name alone does not say which)."""
    names: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            if DATA in path.parents:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module)
    return names


# Extras imported only when used (`--executor ray`): not installed everywhere the tests run.
OPTIONAL = {"ray"}


def _third_party(modules: set[str]) -> set[str]:
    dists = packages_distributions()
    local = {"trialrun", "tests", "bench", "examples"} | {
        p.stem for p in (ROOT / "examples").iterdir()}  # examples import each other by path
    out = set()
    for m in modules:
        top = m.split(".")[0]
        if top in sys.stdlib_module_names or top in local:
            continue
        if top in OPTIONAL and top not in dists:
            continue
        assert top in dists, f"{top!r} is imported but no installed distribution provides it"
        out |= {_norm(d) for d in (dists[top] if len(dists[top]) == 1 else [_owner(m)])}
    return out


def _owner(module: str) -> str:
    """The distribution whose files hold `module` (a namespace package's part)."""
    origin = Path(importlib.util.find_spec(module).origin).resolve()
    for dist in packages_distributions()[module.split(".")[0]]:
        for f in distribution(dist).files or []:
            if Path(f.locate()).resolve() == origin:
                return dist
    raise AssertionError(f"no installed distribution holds {module} ({origin})")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(group: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return {_norm(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in deps}


def test_every_imported_package_is_declared_and_every_declared_one_is_used():
    used = _third_party(_imports(PRODUCT))
    declared = _declared()
    assert used - declared - _declared("ray") == set(), \
        "imported but not declared in [project.dependencies] (or the ray extra)"
    assert declared - used == set(), "declared in [project.dependencies] but never imported"


def test_the_tests_need_only_the_test_extra():
    used = _third_party(_imports(["tests", "bench", "examples"]))
    assert used - _declared() - _declared("test") == set()


def test_the_public_face_imports_lazily_and_completely():
    # `import trialrun` is cheap (no numpy, sqlmodel, docker), and every name in __all__ is real.
    code = ("import sys, trialrun; heavy = {'numpy', 'sqlmodel', 'docker', 'scipy'} & "
            "set(sys.modules); assert not heavy, heavy; "
            "missing = [n for n in trialrun.__all__ if getattr(trialrun, n, None) is None]; "
            "assert not missing, missing")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_every_world_folder_is_packaged():
    # A built-in world is one folder under sandbox/worlds/; an installed trialrun must ship it.
    from trialrun.registry import _world_folders

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]
    assert _world_folders() == ["calendar", "codebase", "retail", "vending", "workflow"]
    for folder in _world_folders():
        assert f"trialrun.sandbox.worlds.{folder}" in packages, folder
