"""Small helpers shared by the checks: plain comparable data, JSON checks, and short
texts for exceptions, values and validation errors.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


def _plain(x: Any) -> Any:
    """A value as comparable plain data (models dumped, the rest through JSON)."""
    if isinstance(x, BaseModel):
        try:
            x = x.model_dump(mode="json")
        except Exception:  # noqa: BLE001 - data that is not JSON: compare its python dump
            x = x.model_dump()
    elif isinstance(x, list) and x and all(isinstance(i, BaseModel) for i in x):
        return [_plain(i) for i in x]
    try:
        return json.loads(json.dumps(x, sort_keys=True, default=repr))
    except (TypeError, ValueError, RecursionError):
        return repr(x)


def _is_json(x: Any) -> bool:
    return _json_error(x) == ""


def _json_error(x: Any) -> str:
    try:
        json.dumps(x, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        return str(e)
    return ""


def _exc(e: BaseException) -> str:
    """`KeyError: 'x' (world.py:42 in get_order)`: the exception and where it was raised."""
    tb = traceback.extract_tb(e.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno} in {tb[-1].name})" if tb else ""
    return f"{type(e).__name__}: {e}{where}"


def _short(x: Any, n: int = 80) -> str:
    return _clip(repr(x), n)


def _clip(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def _brief(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}"
                     for err in e.errors()[:5])
