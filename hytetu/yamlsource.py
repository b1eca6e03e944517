"""YAML loading that remembers where each value stood, so errors can name file and line."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hytetu.errors import Problem
from hytetu.inputs import MB, Limits, UnreadableFile, read_input

Path_ = tuple[str | int, ...]


@dataclass
class YamlDoc:
    """A parsed YAML file with the line of every key and item (1-based)."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that exists."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def problem(self, path: Path_, message: str, severity: str = "error") -> Problem:
        return Problem(self.file, self.line_of(path), dotted(path), message, severity)


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_MERGE_TAG = "tag:yaml.org,2002:merge"


#: Deeper nesting or more values (aliases repeat theirs) than any config or notes file
#: needs: beyond them PyYAML and the checks would recurse past Python's limit, or expand
#: a "billion laughs" of aliases for ever.
MAX_DEPTH = 50
MAX_VALUES = 200_000


class _Loader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _no_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:  # `<<: *defaults` is a merge, not a key
            continue
        key = loader.construct_object(key_node)
        try:
            hash(key)
        except TypeError:  # `? [a, b]`: a list or mapping as a key
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value, not a list", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def _guarded(tag: str, kind: str) -> None:
    """PyYAML's scalar constructors let ValueError and friends out (a 5000-digit number,
    2025-02-30, ``!!timestamp x``): make them a located YAML error."""
    construct = _Loader.yaml_constructors[tag]

    def guarded(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        try:
            value = construct(loader, node)
            if isinstance(value, int) and value.bit_length() > 14_000:  # 0x…, 0b… forms
                raise ValueError("over 4000 digits")  # Python will not even print it
            return value
        except (ValueError, TypeError, AttributeError, OverflowError) as e:
            shown = str(node.value)
            shown = shown if len(shown) <= 40 else f"{shown[:20]}…({len(shown)} characters)"
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown!r} is not a valid {kind} ({e})"[:300], node.start_mark
            ) from None

    _Loader.add_constructor(tag, guarded)


for _tag, _kind in (("int", "number"), ("float", "number"), ("timestamp", "date")):
    _guarded(f"tag:yaml.org,2002:{_tag}", _kind)
_guarded("tag:yaml.org,2002:binary", "base64 text")


def _expansion(root: yaml.Node) -> tuple[int, int, yaml.Node]:
    """(values, depth, deepest node) of the document as loading would expand it, aliases
    repeated; iterative, each node once (cycles count once)."""
    size: dict[int, tuple[int, int, yaml.Node]] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size and not done:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if not done:
            size[id(node)] = (1, 1, node)  # provisional: a cycle back here counts once
            stack.append((node, True))
            stack += [(c, False) for c in children if id(c) not in size]
            continue
        known = [size[id(c)] for c in children if id(c) in size]
        values = min(1 + sum(k[0] for k in known), MAX_VALUES + 1)
        deepest = max(known, key=lambda k: k[1], default=(0, 0, node))
        size[id(node)] = (values, 1 + deepest[1], deepest[2] if known else node)
    return size[id(root)]


def _record(
    node: yaml.Node,
    path: Path_,
    lines: dict[Path_, int],
    key_of: Callable[[yaml.Node], Any],
    seen: set[int],
) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        # An alias repeats a node: walk it once (no endless loop on `&a [*a]`, no blow-up).
        if id(node) in seen:
            return
        seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_of(key_node))
            _record(value_node, child, lines, key_of, seen)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record(item, (*path, i), lines, key_of, seen)


def _key_of(loader: _Loader) -> Callable[[yaml.Node], Any]:
    """The key as it appears in the loaded data (``2025:`` is an int, ``no:`` a bool)."""

    def key_of(node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag != _MERGE_TAG:
            try:
                key = loader.construct_object(node)
                hash(key)
                return key
            except (yaml.YAMLError, TypeError):
                pass
        return node.value if isinstance(node.value, str) else str(node.start_mark)

    return key_of


#: The largest YAML file read (region.yaml, cycle.yaml, session notes), in MB: a region's
#: config is some 100 KB; a 30 MB one is a mistake or an attack, not a config.
MAX_YAML_MB_VAR = "HYTETU_MAX_YAML_MB"
DEFAULT_MAX_YAML_MB = 2.0


def yaml_limits() -> Limits:
    raw = os.environ.get(MAX_YAML_MB_VAR, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_MAX_YAML_MB
    except ValueError:
        mb = -1
    if not mb > 0:
        raise YamlSyntaxError(
            Problem(MAX_YAML_MB_VAR, None, "", f"not a positive number of megabytes: {raw!r}")
        )
    return Limits(file_bytes=int(mb * MB), setting="the environment")


def load_yaml(path: Path, display: str | None = None) -> YamlDoc:
    """Parse one YAML file. Raises ``YamlSyntaxError`` carrying a located Problem."""
    name = display or str(path)
    try:
        # missing, a folder, no permission, too large...
        raw = read_input(path, name, yaml_limits(), MAX_YAML_MB_VAR)
    except UnreadableFile as e:
        raise YamlSyntaxError(e.problem) from None
    try:
        # as read_text would: universal newlines
        text = raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise YamlSyntaxError(
            Problem(name, line, "", f"not UTF-8 text (byte {e.start}); save the file as UTF-8")
        ) from None
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as e:  # a control character such as NUL
        line = text.count("\n", 0, e.position) + 1
        raise YamlSyntaxError(
            Problem(name, line, "", f"YAML syntax: character #x{e.character:04x} is not allowed")
        ) from None
    lines: dict[Path_, int] = {}
    try:
        node = loader.get_single_node()
        if node is not None:
            values, depth, deepest = _expansion(node)
            if values > MAX_VALUES or depth > MAX_DEPTH:
                what = (
                    f"expand to more than {MAX_VALUES} values"
                    if values > MAX_VALUES
                    else f"nest more than {MAX_DEPTH} levels deep"
                )
                raise yaml.composer.ComposerError(
                    None, None, f"its aliases (*name) {what}", deepest.start_mark
                )
        data = loader.construct_document(node) if node is not None else None
        if node is not None:
            _record(node, (), lines, _key_of(loader), set())
    except yaml.MarkedYAMLError as e:
        raise YamlSyntaxError(Problem(name, *_located(e))) from None
    except yaml.YAMLError as e:
        raise YamlSyntaxError(Problem(name, None, "", f"YAML syntax: {e}")) from None
    finally:
        loader.dispose()
    return YamlDoc(name, data, lines)


def _located(e: yaml.MarkedYAMLError) -> tuple[int | None, str, str]:
    """(line, field, message) of a syntax error: the line is where parsing failed; the
    construct it was in (e.g. a flow mapping opened on an earlier line) is named too."""
    mark = e.problem_mark or e.context_mark
    line = mark.line + 1 if mark else None
    what = e.problem or e.context or "invalid YAML"
    if e.context and e.problem:
        where = ""
        if e.context_mark and e.problem_mark and e.context_mark.line != e.problem_mark.line:
            where = f" started on line {e.context_mark.line + 1}"
        what = f"{e.problem} ({e.context}{where})"
    return line, "", f"YAML syntax: {what}"


def control_problems(doc: YamlDoc) -> list[Problem]:
    """Every key or text holding a control character (NUL, VT, ESC...): written as an
    escape in a quoted YAML string, or pasted in unseen. PostgreSQL cannot store NUL, and
    they break e-mail headers, calendars and file names, so they are refused up front."""
    from hytetu.safe import CONTROL

    out: list[Problem] = []
    seen: set[int] = set()  # an alias repeats a node, and may even contain itself

    def walk(node: Any, path: Path_) -> None:
        if isinstance(node, dict | list):
            if id(node) in seen:
                return
            seen.add(id(node))
        if isinstance(node, dict):
            for key, value in node.items():
                walk(key, path)
                walk(value, (*path, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, (*path, i))
        elif isinstance(node, str) and (bad := CONTROL.search(node)):
            out.append(
                doc.problem(
                    path,
                    f"control character U+{ord(bad.group()):04X} is not allowed in a text "
                    f"(at character {bad.start() + 1}); remove it",
                )
            )

    walk(doc.data, ())
    return out


class YamlSyntaxError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem
