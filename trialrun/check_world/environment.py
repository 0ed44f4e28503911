"""The environment a run sees: a fixed wall clock (time and datetime faked with
`unittest.mock`) and seeded global RNGs (`random`, numpy), saved and put back.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.util
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from unittest import mock

_REAL_DATETIME, _REAL_DATE = _dt.datetime, _dt.date
_REAL_TIME = {n: getattr(time, n) for n in ("time", "time_ns", "monotonic", "monotonic_ns",
                                            "perf_counter", "perf_counter_ns")}


class _RealInstances(type):
    """Metaclass of the patched datetime classes: isinstance checks against the real class,
    so that world code comparing types behaves as without the patch."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.__bases__[0])

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls.__bases__[0])


def _clock_fakes(wall: float) -> dict[Any, Any]:
    """Real clock object -> its stand-in for a run whose wall clock reads `wall`."""

    class FrozenDatetime(_REAL_DATETIME, metaclass=_RealInstances):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return _REAL_DATETIME.fromtimestamp(wall, tz)

        @classmethod
        def utcnow(cls) -> Any:
            return _REAL_DATETIME.fromtimestamp(wall, _dt.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls) -> Any:
            return _REAL_DATETIME.fromtimestamp(wall)

    class FrozenDate(_REAL_DATE, metaclass=_RealInstances):
        @classmethod
        def today(cls) -> Any:
            return _REAL_DATE.fromtimestamp(wall)

    real = _REAL_TIME
    shift_ns = int(wall * 1e9)
    return {
        # What time it is: fixed for the whole run.
        real["time"]: lambda: wall,
        real["time_ns"]: lambda: shift_ns,
        # Interval clocks keep running (timeouts depend on them), shifted by the wall clock.
        real["monotonic"]: lambda: real["monotonic"]() + wall,
        real["monotonic_ns"]: lambda: real["monotonic_ns"]() + shift_ns,
        real["perf_counter"]: lambda: real["perf_counter"]() + wall,
        real["perf_counter_ns"]: lambda: real["perf_counter_ns"]() + shift_ns,
        _REAL_DATETIME: FrozenDatetime,
        _REAL_DATE: FrozenDate,
    }


@contextlib.contextmanager
def _environment(wall: float, global_seed: int, modules: list[ModuleType]) -> Iterator[None]:
    """The wall clock reads `wall`; the global RNGs are seeded with `global_seed`."""
    fakes = _clock_fakes(wall)
    with contextlib.ExitStack() as stack:
        for name, real in _REAL_TIME.items():
            stack.enter_context(mock.patch.object(time, name, fakes[real]))
        stack.enter_context(mock.patch.object(_dt, "datetime", fakes[_REAL_DATETIME]))
        stack.enter_context(mock.patch.object(_dt, "date", fakes[_REAL_DATE]))
        for module in modules:  # `from time import time`, `from datetime import datetime`
            for attr, value in list(vars(module).items()):
                try:
                    fake = fakes.get(value)
                except Exception:  # noqa: BLE001 - unhashable or odd module attributes
                    continue
                if fake is not None:
                    stack.enter_context(mock.patch.object(module, attr, fake))
        random.seed(global_seed)
        np = _numpy()
        if np is not None:
            np.random.seed(global_seed)
        yield


def _world_modules(cls: type) -> list[ModuleType]:
    """The modules of the world's package(s): where `from time import time` binds names."""
    from trialrun.sandbox import world as world_module

    packages = set()
    for klass in cls.__mro__:
        mod = klass.__module__
        if mod in ("builtins", "abc", world_module.__name__):
            continue
        packages.add(mod.rpartition(".")[0] or mod)
    return [m for name, m in list(sys.modules.items()) if isinstance(m, ModuleType) and any(
        name == p or name.startswith(p + ".") for p in packages)]


def _numpy() -> Any:
    if "numpy" not in sys.modules and importlib.util.find_spec("numpy") is None:
        return None
    import numpy

    return numpy


@dataclass
class _GlobalRngs:
    """The global RNGs' states before the checks, put back after them."""

    py: Any
    np: Any

    @classmethod
    def save(cls) -> _GlobalRngs:
        np = _numpy()
        return cls(random.getstate(), np.random.get_state() if np is not None else None)

    def restore(self) -> None:
        random.setstate(self.py)
        if self.np is not None:
            _numpy().random.set_state(self.np)
