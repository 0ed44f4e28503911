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


# Bounds: whatever the bytes, loading takes well under a second or stops with one clear error.
MAX_CHARS = 4 * 1024 * 1024  # a scenario file's size
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_NODES = 250_000  # values aliases may add to the document, once each is expanded

# libyaml (C) parses and composes several times faster; its positions are the same. Errors
# are re-read with the Python parser, whose messages the documentation and tests quote.
_FAST = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader


def position_of(text: str, index: int) -> Position:
    """The line and column (1-based) of character `index` of `text`."""
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    return Position(line, index - (text.rfind("\n", 0, index) + 1) + 1)


def _syntax_error(e: yaml.YAMLError, text: str) -> YamlSyntaxError:
    """One located error from whatever PyYAML raised."""
    if isinstance(e, yaml.reader.ReaderError):
        c = e.character
        code = c if isinstance(c, int) else ord(c) if isinstance(c, str) and len(c) == 1 \
            else None
        name = "a control character" if code is not None and (
            code < 32 or 0x7F <= code <= 0x9F) else "a character"
        what = f"U+{code:04X}" if code is not None else repr(c)
        return YamlSyntaxError(f"{name} ({what}) is not allowed in YAML; remove "
                               "it or write it as an escape in a double-quoted string",
                               position_of(text, e.position))
    if not isinstance(e, yaml.MarkedYAMLError):
        return YamlSyntaxError(str(e).splitlines()[0] if str(e) else "invalid YAML", None)
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
    elif e.context and e.context.startswith("while constructing a mapping") \
            and "merging" in problem:
        problem = ("a merge key (<<) takes a mapping or a list of mappings, not a "
                   f"{problem.rpartition('found ')[2]}")
    hint = ""
    if "mapping values are not allowed" in problem or "expected <block end>" in problem:
        hint = " (check the indentation of this line and the one above)"
    elif "'\\t'" in problem:
        hint = " (YAML indents with spaces, not tabs)"
    return YamlSyntaxError(f"{problem}{hint}", _pos(mark) if mark else None)


def _scan(text: str, loader: type) -> None:
    """Walk the document's events (no tree built, no recursion): refuse nesting deeper than
    MAX_DEPTH, an alias to a collection that contains it, an undefined alias, and aliases that
    add more than MAX_NODES values to the document once expanded (an "alias bomb")."""
    open_: list[list[Any]] = []  # [anchor, expanded size] of each collection being read
    sizes: dict[str, int] = {}  # anchor -> expanded size of the finished node
    expanded = 0  # values that aliases add to the document

    def add(size: int) -> None:
        if open_:
            open_[-1][1] += size

    for ev in yaml.parse(text, Loader=loader):
        if isinstance(ev, yaml.ScalarEvent):
            if ev.anchor:
                sizes[ev.anchor] = 1
            add(1)
        elif isinstance(ev, yaml.AliasEvent):
            if ev.anchor not in sizes:
                if any(o[0] == ev.anchor for o in open_):
                    raise YamlSyntaxError(f"alias *{ev.anchor} refers to a collection that "
                                          "contains it (a recursive alias)", _pos(ev.start_mark))
                raise YamlSyntaxError(f"found undefined alias *{ev.anchor} (no &{ev.anchor} "
                                      "before it)", _pos(ev.start_mark))
            expanded += sizes[ev.anchor]
            if expanded > MAX_NODES:
                raise YamlSyntaxError(
                    f"aliases expand this document by more than {MAX_NODES:,} values (an "
                    "alias refers to a large part, many times over); write it out or shrink "
                    "it", _pos(ev.start_mark))
            add(sizes[ev.anchor])
        elif isinstance(ev, yaml.CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                raise YamlSyntaxError(f"nested more than {MAX_DEPTH} levels deep",
                                      _pos(ev.start_mark))
            open_.append([ev.anchor, 1])
        elif isinstance(ev, yaml.CollectionEndEvent):
            anchor, size = open_.pop()
            if anchor:
                sizes[anchor] = size
            add(size)


def load_yaml(text: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document safely (no tags that build objects), keeping positions.
    Bounded: size, nesting and alias expansion (see MAX_*); every problem is a
    YamlSyntaxError with its position, never a RecursionError or MemoryError."""
    if len(text) > MAX_CHARS:
        raise YamlSyntaxError(f"the file is {len(text):,} characters long; a scenario may "
                              f"have at most {MAX_CHARS:,} (generate tasks with "
                              "`tasks: {generate: N}` instead of listing them)", Position(1, 1))
    try:
        try:
            _scan(text, _FAST)
            node = yaml.compose(text, Loader=_FAST)
        except yaml.YAMLError:
            # The same document through the Python parser: its messages name the problem.
            _scan(text, yaml.SafeLoader)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        return _build(node) if node is not None else (None, SourceMap())
    except yaml.YAMLError as e:
        raise _syntax_error(e, text) from None
    except (RecursionError, MemoryError):
        raise YamlSyntaxError("the document is too deeply nested or too large to load",
                              None) from None


def _build(node: yaml.Node) -> tuple[Any, SourceMap]:
    smap = SourceMap()
    constructor = yaml.SafeLoader("")
    open_nodes: set[int] = set()  # the collections being built: an alias back to one recurses
    own_keys: dict[int, set[int]] = {}  # mapping -> its own key nodes (not merged by <<)

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
            if id(n) not in own_keys:  # flatten once: an aliased mapping is built again
                own_keys[id(n)] = {id(k) for k, _ in n.value
                                   if k.tag != "tag:yaml.org,2002:merge"}
                constructor.flatten_mapping(n)
            own = own_keys[id(n)]
            out: dict[Any, Any] = {}
            explicit: set[Any] = set()
            for key_node, value_node in n.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool):
                    raise YamlSyntaxError("mapping keys must be plain scalars",
                                          _pos(key_node.start_mark))
                if id(key_node) in own:
                    if key in explicit:
                        raise YamlSyntaxError(f"duplicate key {key!r}",
                                              _pos(key_node.start_mark))
                    explicit.add(key)
                # a merged key (<<) may be set again: by a later merge (flatten_mapping orders
                # them so that YAML's precedence comes out) or by the mapping's own key
                smap.keys[(*loc, key)] = _pos(key_node.start_mark)
                out[key] = build(value_node, (*loc, key))
            return out
        return [build(item, (*loc, i)) for i, item in enumerate(n.value)]

    return build(node, ()), smap


def read_yaml(path: Path) -> tuple[Any, SourceMap]:
    return load_yaml(path.read_text(encoding="utf-8"))
