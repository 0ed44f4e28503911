"""One registry resolves every kind of plugin: built-in names, import paths, entry points,
with "did you mean" on a typo and the wrong kind refused."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from trialrun import registry
from trialrun.agents.base import Agent
from trialrun.errors import PluginNotFound
from trialrun.sandbox.world import World


@pytest.mark.parametrize("kind", ["world", "agent", "grader", "human", "checkpoint", "sandbox",
                                  "executor"])
def test_every_builtin_name_resolves_to_its_kind(kind):
    names = registry.names(kind)
    assert names
    base = registry._base(kind)
    for name in names:
        cls = registry.resolve(kind, name)
        assert issubclass(cls, base), (kind, name)
        assert cls.name == name or kind == "sandbox" and cls.backend == name


def test_a_typo_gets_did_you_mean_and_the_known_names():
    with pytest.raises(PluginNotFound) as e:
        registry.resolve("world", "retial")
    assert "did you mean 'retail'?" in str(e.value) and "calendar" in str(e.value)
    with pytest.raises(PluginNotFound, match="did you mean 'before_irreversible'"):
        registry.resolve("checkpoint", "before_irreversable")


def test_import_paths_resolve_and_the_wrong_kind_is_refused():
    assert registry.resolve("world", "trialrun.sandbox.worlds.retail:RetailWorld").name == \
        "retail"
    with pytest.raises(PluginNotFound, match="not a subclass of trialrun.agents.base.Agent"):
        registry.resolve("agent", "trialrun.sandbox.worlds.retail:RetailWorld")
    with pytest.raises(PluginNotFound,
                       match="cannot import module 'no_such_pkg.mod' .ModuleNotFoundError"):
        registry.resolve("world", "no_such_pkg.mod:World")
    with pytest.raises(PluginNotFound, match="has no 'Nope'"):
        registry.resolve("world", "trialrun.sandbox.worlds.retail:Nope")


def test_a_module_that_raises_on_import_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "broken_world.py").write_text("raise KeyError('zip')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginNotFound, match=r"importing 'broken_world' raised KeyError"):
        registry.resolve("world", "broken_world:World")


class PluginWorld(World):
    def reset(self):
        raise NotImplementedError

    def state(self):
        return {}


class PluginAgent(Agent):
    async def decide(self, obs):
        raise NotImplementedError


def test_entry_points_of_third_party_packages_resolve(monkeypatch):
    eps = {"trialrun.worlds": [EntryPoint("thirdparty", f"{__name__}:PluginWorld",
                                          "trialrun.worlds")],
           "trialrun.agents": [EntryPoint("thirdparty-agent", f"{__name__}:PluginAgent",
                                          "trialrun.agents")]}

    def fake_entry_points(group, name=None):
        return [ep for ep in eps.get(group, []) if name is None or ep.name == name]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_registered", {k: {} for k in registry.KINDS})
    assert "thirdparty" in registry.names("world")
    assert registry.resolve("world", "thirdparty") is PluginWorld
    assert registry.resolve("agent", "thirdparty-agent") is PluginAgent


def test_register_makes_a_name_resolve(monkeypatch):
    monkeypatch.setattr(registry, "_registered", {k: {} for k in registry.KINDS})

    @registry.register("agent", "mine")
    class Mine(PluginAgent):
        pass

    assert registry.resolve("agent", "mine") is Mine and Mine.name == "mine"
