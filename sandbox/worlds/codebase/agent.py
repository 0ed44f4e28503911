"""A scripted reference agent for the codebase world: reproduce, localize, mutate, verify.

No model: it runs the visible tests, reads the first failing test, finds the functions that
test calls (grep for their `def`), and tries one-token mutations of their lines (comparison
and arithmetic operators, min/max, True/False, and/or, off-by-one), keeping a mutation only
if it makes strictly fewer visible tests fail and breaks none. So it fixes seeded bugs that
the visible tests expose and a single token repairs, and fails, as a real agent would, on
bugs that only the hidden tests see or that need a real rewrite.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Generator
from typing import Any

from pydantic import Field

from trialrun.agents.base import Agent, AgentContext, AgentOptions, Feedback
from trialrun.registry import register
from trialrun.trajectory import Decision, Observation, ToolResult

NODES = ("reproduce", "localize", "edit", "verify", "revert", "finish")
_NOT_CODE = {"pytest", "raises", "approx", "len", "sorted", "list", "set", "dict", "str", "int",
             "float", "abs", "round", "range", "isclose", "sqrt", "date", "Decimal", "print"}


def mutations(line: str) -> list[str]:
    """One-token variants of a source line (its comment and strings left alone)."""
    code, sep, comment = line.partition("  #")
    out: list[str] = []

    def each(pattern: str, repl: str) -> None:
        for m in re.finditer(pattern, code):
            out.append(code[: m.start()] + repl + code[m.end():] + sep + comment)

    each(r"(?<![<>=!])<=(?!=)", "<")
    each(r"(?<![<>=!-])<(?![<=])", "<=")
    each(r"(?<![<>=!])>=(?!=)", ">")
    each(r"(?<![<>=!-])>(?![>=])", ">=")
    each(r"==", "!=")
    each(r"!=", "==")
    each(r" \+ ", " - ")
    each(r" - ", " + ")
    each(r"\bTrue\b", "False")
    each(r"\bFalse\b", "True")
    each(r" and ", " or ")
    each(r" or ", " and ")
    if re.search(r"\b(min|max)\(", code):
        swapped = re.sub(r"\b(min|max)\(", lambda m: "max(" if m.group(1) == "min" else "min(",
                         code)
        out.append(swapped + sep + comment)
    for m in re.finditer(r"len\([^()]*\)(?! [-+] 1)", code):
        out.append(code[: m.end()] + " - 1" + code[m.end():] + sep + comment)
    each(r" [-+] 1\b", "")
    seen, uniq = {line}, []
    for o in out:
        if o not in seen:
            seen.add(o)
            uniq.append(o)
    return uniq


def called_names(source: str, test: str) -> list[str]:
    """Names of the functions and classes a test function calls, in order of appearance."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == test:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Call):
                    f = sub.func
                    name = f.id if isinstance(f, ast.Name) else (
                        f.attr if isinstance(f, ast.Attribute) else None)
                    if name and name not in _NOT_CODE and name not in names:
                        names.append(name)
    return names


def function_body(lines: list[str], start: int) -> list[int]:
    """Indices of the lines of the `def` at `start`, its signature excluded."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    body = []
    for i in range(start + 1, len(lines)):
        text = lines[i]
        if text.strip() and len(text) - len(text.lstrip()) <= indent:
            break
        if text.strip() and not text.strip().startswith(("#", '"""', "'''")):
            body.append(i)
    return body


def unique_edit(lines: list[str], i: int, new_line: str) -> tuple[str, str]:
    """(old, new) around line i, widened upwards until `old` occurs once in the file."""
    text = "\n".join(lines)
    lo = i
    while True:
        old = "\n".join(lines[lo: i + 1])
        if text.count(old) == 1 or lo == 0:
            new = "\n".join([*lines[lo:i], new_line])
            return old, new
        lo -= 1


@register("agent", "scripted:codebase")
class ScriptedCodebaseAgent(Agent):
    """Reproduce with the visible tests, localize from the first failing test, try one-token
    mutations, keep those that help (see the module docstring)."""

    nodes = frozenset(NODES)

    class Options(AgentOptions):
        """The scenario's `agent.params`."""

        max_mutations: int = Field(40, ge=0, le=1000, description="mutations tried at most")

    options: Options

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        self.last: ToolResult | None = None
        self.plan = self._strategy()
        self.begun = False

    async def decide(self, obs: Observation) -> Decision:
        try:
            return self.plan.send(self.last) if self.begun else next(self.plan)
        except StopIteration:
            return Decision(kind="finish", node="finish", text="nothing more to try")
        finally:
            self.begun = True

    async def feedback(self, fb: Feedback) -> None:
        self.last = fb.result

    # --- the strategy, as a generator of decisions fed with their results -------------
    def _strategy(self) -> Generator[Decision, ToolResult | None, None]:
        def call(node: str, tool: str, **args: Any) -> Decision:
            return Decision(kind="tool_call", node=node, tool=tool, args=args)

        def finish(text: str) -> Decision:
            return Decision(kind="finish", node="finish", text=text)

        r = yield call("reproduce", "run_tests")
        failing = set(_failed(r) or [])
        if not failing:
            yield finish("the visible tests pass; I could not reproduce the issue")
            return
        first = _failed(r)[0]  # in the order pytest reported them
        test_file, _, test_name = first.partition("::")
        r = yield call("localize", "read_file", path=test_file)
        names = called_names(_text(r), test_name.split("[")[0])
        files: dict[str, list[str]] = {}  # what this agent knows of each file it read
        seen: set[str] = set()
        tried = 0
        for _level in range(2):  # the functions the test calls, then what those call
            names = [n for n in names if n not in seen and n not in _NOT_CODE]
            if not names:
                break
            seen.update(names)
            pattern = "|".join(re.escape(n) for n in names)
            r = yield call("localize", "run", command=(
                f"grep -rnE '^[[:space:]]*(def|class) ({pattern})\\b' --include='*.py' . "
                "| grep -v '^./tests/' || true"))
            callees: list[str] = []
            for path, def_line in _locations(r):
                if path not in files:
                    r = yield call("localize", "read_file", path=path)
                    files[path] = _text(r).split("\n")
                lines = files[path]
                if def_line >= len(lines):
                    continue
                for i in function_body(lines, def_line):
                    callees += re.findall(r"\b([A-Za-z_]\w*)\(", lines[i])
                    for cand in mutations(lines[i]):
                        if tried >= self.options.max_mutations:
                            yield finish("gave up: mutation budget spent")
                            return
                        tried += 1
                        old, new = unique_edit(lines, i, cand)
                        r = yield call("edit", "edit_file", path=path, old=old, new=new)
                        if not (r and r.ok):
                            continue
                        r = yield call("verify", "run_tests")
                        now = _failed(r)
                        if now is not None and set(now) < failing:
                            failing = set(now)
                            lines[i] = cand
                            if not failing:
                                yield finish(f"fixed: {path} line {i + 1} now reads "
                                             f"`{cand.strip()}`; the visible tests pass")
                                return
                            break  # this line is settled; go on with the next
                        yield call("revert", "edit_file", path=path, old=new, new=old)
            names = list(dict.fromkeys(callees))
        yield finish("could not find a fix")


def _failed(r: ToolResult | None) -> list[str] | None:
    if r is None or not isinstance(r.output, dict) or "failed" not in r.output:
        return None
    if r.output.get("violation"):
        return None
    failed = list(r.output["failed"])
    if not failed and r.output.get("exit_code") not in (0, None):
        return None  # pytest itself failed (collection error): not progress
    return failed


def _locations(r: ToolResult | None) -> list[tuple[str, int]]:
    """grep -n output -> [(path, 0-based line)]."""
    stdout = r.output.get("stdout", "") if r and isinstance(r.output, dict) else ""
    out = []
    for line in stdout.splitlines():
        path, _, rest = line.partition(":")
        num = rest.partition(":")[0]
        if num.isdigit():
            out.append((path.removeprefix("./"), int(num) - 1))
    return out


def _text(r: ToolResult | None) -> str:
    return r.output if r is not None and r.ok and isinstance(r.output, str) else ""
