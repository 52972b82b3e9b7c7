"""YAML to plain data, remembering the line and column of every key and value.

PyYAML's composer gives nodes with marks; we build dicts/lists/scalars from them ourselves so
that each value's position is kept under its key path (`subaccounts[0].keys[1].ips[0]`), and
so that duplicate keys are reported instead of silently overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from orchestrator.config.limits import MAX_DEPTH, MAX_VALUE_CHARS, SPLIT_HINT

Position = tuple[int, int]  # 1-based line, column

#: a guard against alias bombs ("billion laughs"); a real plan has a few thousand nodes.
MAX_NODES = 200_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class SyntaxProblem:
    """A YAML-level problem found while reading (no file name yet)."""

    path: str
    position: Position
    message: str
    hint: str


@dataclass
class Source:
    """Plain data of one plan file plus where each piece of it was written."""

    data: Any
    values: dict[str, Position] = field(default_factory=dict)
    keys: dict[str, Position] = field(default_factory=dict)
    problems: list[SyntaxProblem] = field(default_factory=list)

    def locate(self, path: str, *, key: bool = False) -> Position:
        """Where `path` is written; for a missing path, where its nearest parent is."""
        tables = (self.keys, self.values) if key else (self.values, self.keys)
        current = path
        while True:
            for table in tables:
                if current in table:
                    return table[current]
            if not current:
                return (1, 1)
            current = parent_path(current)


def join_path(base: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{base}[{part}]"
    return f"{base}.{part}" if base else str(part)


def parent_path(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


def _position(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


class YamlSyntaxError(Exception):
    """YAML that cannot be parsed at all."""

    def __init__(self, problem: SyntaxProblem) -> None:
        self.problem = problem
        super().__init__(problem.message)


def read_yaml(text: str) -> Source:
    """Parse `text`; raise YamlSyntaxError for broken YAML, collect other problems.

    A plain plan (no anchors, aliases, collection tags, duplicate or unusual keys) is read
    from libyaml's event stream, several times faster than composing nodes; anything else,
    and any error, goes through PyYAML's own composer, whose messages and positions users see.
    """
    fast = _read_plain(text)
    return fast if fast is not None else _read_composed(text)


def _read_composed(text: str) -> Source:
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        raise YamlSyntaxError(_reader_problem(text, exc)) from None
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(_syntax_problem(exc)) from None
    except yaml.reader.ReaderError as exc:
        raise YamlSyntaxError(_reader_problem(text, exc)) from None
    finally:
        loader.dispose()
    source = Source(data=None)
    if root is None:
        return source
    builder = _Builder(loader, source)
    source.data = builder.build(root, "")
    return source


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, source: Source) -> None:
        self.loader = loader
        self.source = source
        self.count = 0
        self.active: set[int] = set()

    def build(self, node: yaml.Node, path: str, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlSyntaxError(
                SyntaxProblem(
                    path,
                    _position(node),
                    f"the plan expands to more than {MAX_NODES} values",
                    "remove the aliases (*name) that repeat large parts of the file, or "
                    + SPLIT_HINT,
                )
            )
        if depth > MAX_DEPTH:
            raise YamlSyntaxError(
                SyntaxProblem(
                    path,
                    _position(node),
                    f"the plan nests more than {MAX_DEPTH} levels deep here",
                    "a plan needs a few levels (subaccounts, keys, ips): flatten this part",
                )
            )
        self.source.values.setdefault(path, _position(node))
        if isinstance(node, yaml.ScalarNode):
            return self._construct(node, path)
        if id(node) in self.active:
            raise YamlSyntaxError(
                SyntaxProblem(
                    path,
                    _position(node),
                    "an alias refers to the node that contains it",
                    "remove the recursive alias",
                )
            )
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [
                    self.build(item, join_path(path, i), depth + 1)
                    for i, item in enumerate(node.value)
                ]
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth)
            raise TypeError(f"a YAML node that is no scalar, sequence or mapping: {node!r}")
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is None:
                continue
            child = join_path(path, key)
            if key in result:
                first = self.source.keys[child]
                self._problem(
                    child,
                    key_node,
                    f"duplicate key {key!r} (first at line {first[0]})",
                    "keep one of them; YAML would silently use only the last",
                )
                continue
            self.source.keys[child] = _position(key_node)
            result[key] = self.build(value_node, child, depth + 1)
        return result

    def _key(self, node: yaml.Node, path: str) -> str | None:
        if node.tag == _MERGE_TAG:
            self._problem(
                path,
                node,
                "YAML merge keys (<<) are not supported in plans",
                "write the settings out, or put shared ones under `defaults`",
            )
            return None
        if not isinstance(node, yaml.ScalarNode):
            self._problem(
                path, node, "a mapping key must be a plain name", "use a simple word as the key"
            )
            return None
        value = self._construct(node, path)
        return value if isinstance(value, str) else str(value)

    def _construct(self, node: yaml.ScalarNode, path: str) -> Any:
        """A scalar's value; a YAML tag a plan cannot hold (`!!python/...`, `=`) is a problem
        at its position, not a crash; so is a value too long for any plan (checked before it
        is converted: Python refuses to turn more than 4300 digits into a number)."""
        if len(node.value) > MAX_VALUE_CHARS:
            raise YamlSyntaxError(
                SyntaxProblem(
                    path,
                    _position(node),
                    f"this value is {len(node.value)} characters long; a plan value may have "
                    f"at most {MAX_VALUE_CHARS}",
                    "shorten it: no setting of a plan needs a value this long",
                )
            )
        try:
            return self.loader.construct_object(node, deep=True)
        except ValueError as exc:
            raise YamlSyntaxError(
                SyntaxProblem(
                    path,
                    _position(node),
                    f"this value cannot be read: {str(exc).splitlines()[0]}",
                    "write a plain string, number or boolean",
                )
            ) from None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise YamlSyntaxError(
                SyntaxProblem(
                    path,
                    _position(node),
                    f"this value cannot be read: {problem}",
                    "write a plain string, number or boolean (quote it if it starts with = ! & *)",
                )
            ) from None

    def _problem(self, path: str, node: yaml.Node, message: str, hint: str) -> None:
        self.source.problems.append(SyntaxProblem(path, _position(node), message, hint))


class _NotPlain(Exception):
    """The fast reader met something only the composer handles (or reports) faithfully."""


_CParser = getattr(yaml, "CSafeLoader", None)
_STR_TAG = "tag:yaml.org,2002:str"


def _read_plain(text: str) -> Source | None:
    """The Source of a plain plan, straight from libyaml's events; None when libyaml is
    missing or the text needs the composer (which then finds any problem itself)."""
    if _CParser is None or "\t" in text or yaml.reader.Reader.NON_PRINTABLE.search(text):
        return None  # libyaml accepts tabs where PyYAML refuses them
    loader = _CParser(text)
    try:
        loader.get_event()  # stream start
        if not loader.check_event(yaml.DocumentStartEvent):
            return None
        loader.get_event()
        source = Source(data=None)
        source.data = _EventBuilder(loader, source).build("")
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            return None
        return source
    except (_NotPlain, yaml.YAMLError, RecursionError):
        return None
    finally:
        loader.dispose()


class _EventBuilder:
    """The same data and positions as `_Builder`, built from parser events, without nodes."""

    def __init__(self, loader: Any, source: Source) -> None:
        self.loader = loader
        self.values = source.values
        self.keys = source.keys
        self.count = 0

    def build(self, path: str, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise _NotPlain  # the composer reports the limit at its position
        event: Any = self.loader.get_event()
        if getattr(event, "anchor", None) is not None:
            raise _NotPlain
        mark = event.start_mark
        self.values.setdefault(path, (mark.line + 1, mark.column + 1))
        if isinstance(event, yaml.ScalarEvent):
            return self._scalar(event)
        if event.tag not in (None, "!"):
            raise _NotPlain
        if isinstance(event, yaml.SequenceStartEvent):
            items: list[Any] = []
            while not self.loader.check_event(yaml.SequenceEndEvent):
                items.append(self.build(f"{path}[{len(items)}]", depth + 1))
            self.loader.get_event()
            return items
        if isinstance(event, yaml.MappingStartEvent):
            return self._mapping(path, depth)
        raise _NotPlain  # an alias

    def _mapping(self, path: str, depth: int) -> dict:
        result: dict[str, Any] = {}
        while not self.loader.check_event(yaml.MappingEndEvent):
            event: Any = self.loader.get_event()
            if not isinstance(event, yaml.ScalarEvent) or event.anchor is not None:
                raise _NotPlain
            key = self._scalar(event)
            if not isinstance(key, str):
                key = str(key)
            child = f"{path}.{key}" if path else key
            if key in result or key == "<<":
                raise _NotPlain
            mark: Any = event.start_mark
            self.keys[child] = (mark.line + 1, mark.column + 1)
            result[key] = self.build(child, depth + 1)
        self.loader.get_event()
        return result

    def _scalar(self, event: Any) -> Any:
        if event.tag is not None or event.style in ("|", ">") or not event.value:
            raise _NotPlain  # where libyaml and PyYAML disagree on edge cases
        if len(event.value) > MAX_VALUE_CHARS:
            raise _NotPlain  # the composer's reader says which value, and the limit
        tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR_TAG:
            return event.value
        if tag == _MERGE_TAG:
            raise _NotPlain
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError):
            raise _NotPlain from None


def _syntax_problem(exc: yaml.MarkedYAMLError) -> SyntaxProblem:
    """The parser's own words, without its snippet of the line (which may hold a secret)."""
    mark = exc.problem_mark or exc.context_mark
    position = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or "invalid YAML"
    if exc.context:
        opened = exc.context_mark
        where = f" (opened at line {opened.line + 1})" if opened and opened is not mark else ""
        problem = f"{exc.context}{where}: {problem}"
    return SyntaxProblem("", position, f"invalid YAML: {problem}", _syntax_hint(problem))


def _syntax_hint(problem: str) -> str:
    if "'\\t'" in problem:
        return "indent with spaces; YAML does not allow tab characters for indentation"
    if "expected a single document" in problem:
        return "keep one YAML document per plan file (remove the extra `---`)"
    if "mapping values are not allowed" in problem or "expected <block end>" in problem:
        return (
            "check the indentation (spaces, aligned under the parent) and quote values "
            "that contain ': '"
        )
    if "flow" in problem or "']'" in problem or "'}'" in problem:
        return "close every [ with ] and every { with }, and separate items with commas"
    if "quoted scalar" in problem:
        return "close the quoted string with a matching quote"
    return "fix the YAML syntax here (spaces for indentation, closed brackets and quotes)"


def _reader_problem(text: str, exc: yaml.reader.ReaderError) -> SyntaxProblem:
    before = text[: exc.position]
    line = before.count("\n") + 1
    column = exc.position - (before.rfind("\n") + 1) + 1
    char = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return SyntaxProblem(
        "",
        (line, column),
        f"invalid YAML: control character {ord(char):#06x} is not allowed",
        "remove it; a plan is plain text",
    )
