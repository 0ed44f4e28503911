"""The checks made without running the world: the class resolves, is named, and its
Options and Task models forbid unknown keys.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from trialrun.check_world.report import _Report
from trialrun.check_world.util import _exc


def _resolve(world: str | type, out: _Report) -> type | None:
    from trialrun.sandbox.world import World

    if isinstance(world, type):
        cls = world
    else:
        from trialrun.registry import resolve

        try:
            cls = resolve("world", world)
        except LookupError as e:  # PluginNotFound: unknown, typo, not a World subclass
            out.add("resolve", "fail", str(e),
                    "name a registered world (`trialrun check-world retail`) or an import "
                    "path `pkg.module:Class` to a subclass of trialrun.sandbox.world.World")
            return None
        except Exception as e:  # noqa: BLE001 - a world package that fails while importing
            out.add("resolve", "fail", f"importing world {world!r} raised {_exc(e)}",
                    "fix the import error shown (run `python -c 'import <module>'`)")
            return None
    if not (isinstance(cls, type) and issubclass(cls, World)):
        out.add("resolve", "fail", f"{cls!r} is not a subclass of World",
                "subclass trialrun.sandbox.world.World")
        return None
    out.passed("resolve", f"{cls.__module__}:{cls.__qualname__} subclasses World")
    return cls


def _check_name(cls: type, out: _Report) -> None:
    name = getattr(cls, "name", "")
    if isinstance(name, str) and name:
        out.passed("name", f"named {name!r}")
    else:
        out.add("name", "fail", f"{cls.__qualname__}.name is empty: messages and reports "
                "cannot say which world they are about",
                "decorate the class with @register(\"world\", \"<name>\") "
                "(trialrun.registry.register), or set the class attribute name = \"<name>\"")


def _check_model(cls: type, attr: str, check_id: str, out: _Report) -> None:
    model = getattr(cls, attr, None)
    block = "the scenario's `world:` block" if attr == "Options" else "each task's own fields"
    fix = (f"declare `class {attr}(BaseModel): model_config = ConfigDict(extra=\"forbid\")` "
           f"with a field per key of {block} (an empty model is fine)")
    if model is None:
        hint = " (issue 8 renamed `Config` to `Options`)" if attr == "Options" and \
            getattr(cls, "Config", None) is not None else ""
        out.add(check_id, "fail", f"{cls.__qualname__}.{attr} is None{hint}: {block} is not "
                "validated, so a misspelled key is silently ignored", fix)
        return
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        out.add(check_id, "fail", f"{cls.__qualname__}.{attr} is {model!r}, not a pydantic "
                "model", fix)
        return
    loose = [m.__qualname__ for m in _models_in(model) if m.model_config.get("extra") != "forbid"]
    if loose:
        out.add(check_id, "fail", f"{', '.join(loose)} accept(s) unknown keys: a misspelled "
                f"key in {block} would be silently ignored",
                "set model_config = ConfigDict(extra=\"forbid\") on each of them")
        return
    out.passed(check_id, f"{model.__qualname__} forbids unknown keys"
               + (" (and so do the models inside it)" if len(_models_in(model)) > 1 else ""))


def _models_in(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and every pydantic model its fields hold (in lists, dicts, unions)."""
    seen: list[type[BaseModel]] = []

    def walk(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp not in seen:
                seen.append(tp)
                for f in tp.model_fields.values():
                    walk(f.annotation)
            return
        for arg in typing.get_args(tp):
            walk(arg)

    walk(model)
    return seen
