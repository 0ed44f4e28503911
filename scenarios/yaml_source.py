"""YAML that remembers where every value came from, so errors can name file:line:column."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class SourceMap:
    """Positions of values (and of mapping keys) by their path in the document."""

    values: dict[Loc, Position] = field(default_factory=dict)
    keys: dict[Loc, Position] = field(default_factory=dict)

    def find(self, loc: Loc) -> Position | None:
        """The position of `loc`, or of its nearest ancestor that exists in the file."""
        loc = tuple(loc)
        while True:
            if loc in self.keys:
                return self.keys[loc]
            if loc in self.values:
                return self.values[loc]
            if not loc:
                return None
            loc = loc[:-1]


class YamlSyntaxError(ValueError):
    def __init__(self, message: str, position: Position | None) -> None:
        super().__init__(message)
        self.position = position


def _pos(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def load_yaml(text: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document safely (no tags that build objects), keeping positions."""
    smap = SourceMap()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or "invalid YAML"
        if problem.startswith("but ") and e.context:  # "expected a single document ..."
            problem = f"{e.context}, {problem}"
        elif ("<stream end>" in problem or "end of stream" in problem) and e.context_mark \
                and e.context and e.context.startswith("while "):
            # an unclosed {, [ or quote: point at where it opens, not at the end of the file
            mark = e.context_mark
            what = e.context.removeprefix("while parsing ").removeprefix("while scanning ")
            problem = f"{what} that starts here is never closed ({problem})"
        hint = ""
        if "mapping values are not allowed" in problem or "expected <block end>" in problem:
            hint = " (check the indentation of this line and the one above)"
        elif "'\\t'" in problem:
            hint = " (YAML indents with spaces, not tabs)"
        raise YamlSyntaxError(f"{problem}{hint}", _pos(mark) if mark else None) from None
    except yaml.YAMLError as e:
        raise YamlSyntaxError(str(e), None) from None
    if node is None:
        return None, smap
    constructor = yaml.SafeLoader("")
    open_nodes: set[int] = set()  # the collections being built: an alias back to one recurses

    def build(n: yaml.Node, loc: Loc) -> Any:
        smap.values[loc] = _pos(n.start_mark)
        if isinstance(n, yaml.MappingNode | yaml.SequenceNode):
            if id(n) in open_nodes:
                raise YamlSyntaxError("an alias refers to a collection that contains it",
                                      _pos(n.start_mark))
            open_nodes.add(id(n))
            try:
                return build_collection(n, loc)
            finally:
                open_nodes.discard(id(n))
        try:
            return constructor.construct_object(n, deep=True)
        except yaml.constructor.ConstructorError as e:
            raise YamlSyntaxError(e.problem or str(e), _pos(n.start_mark)) from None

    def build_collection(n: yaml.Node, loc: Loc) -> Any:
        if isinstance(n, yaml.MappingNode):
            constructor.flatten_mapping(n)
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool):
                    raise YamlSyntaxError("mapping keys must be plain scalars",
                                          _pos(key_node.start_mark))
                if key in out:
                    raise YamlSyntaxError(f"duplicate key {key!r}", _pos(key_node.start_mark))
                smap.keys[(*loc, key)] = _pos(key_node.start_mark)
                out[key] = build(value_node, (*loc, key))
            return out
        return [build(item, (*loc, i)) for i, item in enumerate(n.value)]

    try:
        return build(node, ()), smap
    except yaml.MarkedYAMLError as e:  # e.g. a merge key (<<) on something not a mapping
        mark = e.problem_mark or e.context_mark
        raise YamlSyntaxError(e.problem or "invalid YAML", _pos(mark) if mark else None) \
            from None
    except yaml.YAMLError as e:
        raise YamlSyntaxError(str(e), None) from None


def read_yaml(path: Path) -> tuple[Any, SourceMap]:
    return load_yaml(path.read_text(encoding="utf-8"))
