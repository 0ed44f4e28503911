"""What every importer shares: the plugin contract, reading JSON with clear errors, grading
actions against gold actions, and storing the episodes as a run.

An importer turns a file written by another harness into trialrun's own records
(`EpisodeResult`: steps with decisions, tool results and grades, an outcome), so everything
after the store (pass^k, per-node accuracy, first errors, compounding, diff, gates, JUnit)
applies unchanged. It never invents what the file does not say: a step no gold action
covers is left ungraded, a missing cost is 0.

An importer is a plugin of kind `importer`:

    from trialrun.importers.base import Importer
    from trialrun.registry import register

    @register("importer", "my-format")
    class MyFormat(Importer):
        description = "one line for --help"

        def read(self, path: Path) -> list[EpisodeResult]:
            ...  # raise ImportFormatError(path, where, "what was expected") on bad input
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from trialrun.errors import TrialrunError
from trialrun.trajectory import EpisodeResult, Grade

# Tools by which an agent hands a conversation to a person: their calls are `ask_human`
# decisions, so the escalation analysis sees them.
ASK_TOOLS = frozenset({"ask_human", "transfer_to_human_agents", "transfer_to_human"})
# Tools whose names say they only read (the gold-action grading leaves their calls ungraded
# unless the format says otherwise, see `is_read_only`).
READ_PREFIXES = ("get_", "find_", "list_", "search_", "lookup_", "read_", "check_", "view_",
                 "calculate", "think")
SUCCESS_TOLERANCE = 1e-6  # a reward within this of 1 is a success (tau-bench's own rule)
RESPOND = "respond"  # the node of the agent's plain messages to the user


class Loose(BaseModel):
    """A record of another harness's file: the fields an importer reads are checked (with
    their path in errors), the others are kept and ignored."""

    model_config = ConfigDict(extra="allow")


class ImportFormatError(TrialrunError):
    """A file that is not what its format promises: one line naming the file, the line or
    field, and what was expected."""

    def __init__(self, path: str | Path, where: str, message: str) -> None:
        self.path, self.where, self.message = str(path), where, message
        super().__init__(f"{path}{':' + where if where else ''}: {message}")


class Importer:
    """Base class: `read(path)` returns the file's episodes (any order)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, scenario: str | None = None) -> None:
        self.scenario = scenario  # overrides the scenario name the format would give

    def read(self, path: Path) -> list[EpisodeResult]:
        raise NotImplementedError


# --- reading -----------------------------------------------------------------------------------
def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ImportFormatError(path, "", "no such file") from None
    except OSError as e:
        raise ImportFormatError(path, "", f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ImportFormatError(path, "", f"not UTF-8 text ({e.reason})") from None


def load_json_values(path: Path, text: str | None = None) -> list[Any]:
    """Every JSON value in the file: one document, JSON lines, or several documents one
    after another (as OpenTelemetry's console exporter prints them). Syntax errors name the
    line and column."""
    text = read_text(path) if text is None else text
    decoder = json.JSONDecoder()
    out, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise ImportFormatError(path, f"{e.lineno}:{e.colno}",
                                    f"not valid JSON: {e.msg}") from None
        out.append(value)
    if not out:
        raise ImportFormatError(path, "", "empty file: expected JSON")
    return out


def load_json(path: Path) -> Any:
    """One JSON document."""
    values = load_json_values(path)
    if len(values) > 1:
        raise ImportFormatError(path, "", f"expected one JSON document, found {len(values)}")
    return values[0]


def field_path(loc: Sequence[Any], prefix: str = "") -> str:
    """A pydantic location as a JSON path: ('simulations', 3, 'messages') -> simulations[3]
    .messages."""
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validation_error(path: Path, exc: ValidationError, prefix: str = "") -> ImportFormatError:
    """The first problem of a pydantic error as one line: file:field: what was expected."""
    err = exc.errors()[0]
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-",
                                                                               "union[")))]
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {json.dumps(got)[:60]})"
    more = len(exc.errors()) - 1
    return ImportFormatError(path, field_path(loc, prefix), f"{err['msg']}{shown}"
                             + (f"; and {more} more problem(s)" if more else ""))


def parse_args(raw: Any) -> tuple[dict[str, Any], str | None]:
    """Tool-call arguments as a mapping, from a mapping or a JSON string; (args, error)."""
    if isinstance(raw, dict):
        return raw, None
    if raw is None or raw == "":
        return {}, None
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            return {}, f"arguments are not JSON: {e.msg}"
        if isinstance(value, dict):
            return value, None
        return {}, f"arguments are not a JSON object: {raw[:60]}"
    return {}, f"arguments are not a mapping: {type(raw).__name__}"


def text_of(content: Any) -> str:
    """Message content as text: a string, or a list of parts with `text`."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) if isinstance(p, dict) else str(p)
                         for p in content)
    return str(content)


# --- gold actions ------------------------------------------------------------------------------
def is_read_only(tool: str, types: dict[str, str] | None = None) -> bool:
    """Whether a tool only reads: as the format says (tau2-bench's `tool_type`), else by its
    name (`READ_PREFIXES`)."""
    if types and tool in types:
        return types[tool] == "read"
    return tool.startswith(READ_PREFIXES)


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class GoldActions:
    """The actions a task's reference solution takes; grades the agent's calls against them.

    Rule (one definition for every format): the graded decisions are the agent's calls of
    tools that change the world (not `is_read_only`) and of tools the gold solution itself
    calls. A call passes if it equals a gold action not matched yet: same tool, same
    arguments (only the `compare` arguments when the gold action lists them); else it fails,
    naming what the gold solution does with that tool. Calls of read-only tools the solution
    never uses are exploration and stay ungraded."""

    GRADER = "gold_actions"

    def __init__(self, actions: Iterable[tuple[str, dict[str, Any], Sequence[str] | None]],
                 tool_types: dict[str, str] | None = None) -> None:
        self.actions = [(n, a or {}, c) for n, a, c in actions]
        self.tool_types = tool_types or {}
        self.used: set[int] = set()
        self.tools = {n for n, _, _ in self.actions}

    def __bool__(self) -> bool:
        return bool(self.actions)

    def grade(self, tool: str, args: dict[str, Any], node: str) -> Grade | None:
        if tool not in self.tools and is_read_only(tool, self.tool_types):
            return None
        for i, (name, gold, compare) in enumerate(self.actions):
            if i in self.used or name != tool:
                continue
            keys = list(compare) if compare else sorted(set(gold) | set(args))
            if all(_canon(gold.get(k)) == _canon(args.get(k)) for k in keys):
                self.used.add(i)
                return Grade(grader=self.GRADER, passed=True, node=node,
                             reason=f"matches gold action {name}")
        same = [_canon(a) for n, a, _ in self.actions if n == tool]
        reason = (f"{tool} with these arguments is not a gold action; the gold solution "
                  f"calls {tool} with {'; '.join(same)[:200]}" if same else
                  f"the gold solution never calls {tool}")
        return Grade(grader=self.GRADER, passed=False, node=node, reason=reason)

    def missed(self) -> list[str]:
        """Gold actions of tools that change the world that no call matched."""
        return [f"{n}({_canon(a)[:80]})" for i, (n, a, _) in enumerate(self.actions)
                if i not in self.used and not is_read_only(n, self.tool_types)]


# --- storing ------------------------------------------------------------------------------------
def import_files(store: Any, fmt: str, files: Sequence[str | Path], scenario: str | None = None,
                 on_file: Callable[[Path, int], None] | None = None,
                 on_episode: Callable[[EpisodeResult], None] | None = None) -> tuple[str, int]:
    """Read every file with the importer `fmt`, store the episodes as one run; (run id,
    episodes). Nothing is stored when a file is malformed."""
    from trialrun.registry import resolve

    cls = resolve("importer", fmt)
    importer = cls(scenario=scenario)
    episodes: list[EpisodeResult] = []
    seen: dict[str, Path] = {}
    for f in files:
        path = Path(f)
        got = importer.read(path)
        for ep in got:
            key = str(ep.key)
            if key in seen:
                raise ImportFormatError(path, "", f"episode {key} (scenario/task/seed/trial) "
                                        f"is also in {seen[key]}: import the files separately "
                                        "or name each with --scenario")
            seen[key] = path
        episodes += got
        if on_file is not None:
            on_file(path, len(got))
    if not episodes:
        raise ImportFormatError(Path(files[0]) if files else Path("."), "",
                                f"no episodes found for format {fmt}")
    episodes.sort(key=lambda e: (e.key.scenario, e.key.task, e.key.seed, e.key.trial))
    run_id = store.create_run([f"import {fmt}", *map(str, files)], {}, len(episodes),
                              {"imported": {"format": fmt, "files": [str(f) for f in files]}})
    try:
        for ep in episodes:
            store.save_episode(run_id, ep)
            if on_episode is not None:
                on_episode(ep)
    except BaseException:
        store.set_status(run_id, "interrupted")
        raise
    store.set_status(run_id, "complete")
    return run_id, len(episodes)
