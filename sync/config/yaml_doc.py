"""Reading a config file: UTF-8 text → YAML data, with the line of every path.

The loader refuses what PyYAML lets pass silently: a key written twice in one
mapping (the second would win without a word) and bytes that are not UTF-8 (a
raw ``UnicodeDecodeError``). Both are ``ConfigProblem``s with the path and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sync.errors import ConfigError, ConfigProblem

_MERGE = "tag:yaml.org,2002:merge"


def format_path(loc: tuple[Any, ...]) -> str:
    """``("pipelines", 0, "erp", "base_url")`` → ``pipelines[0].erp.base_url``."""
    out = ""
    if loc and loc[-1] == "[key]":  # pydantic's mark of a refused mapping key: the key is the path
        loc = loc[:-1]
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


class Lines:
    """YAML path → line number, from the composed node tree (a repeated key: its last line)."""

    def __init__(self, node: yaml.Node | None) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        #: id of each mapping node → its path (the first, when an alias repeats it)
        self.paths: dict[int, tuple[Any, ...]] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            self.paths.setdefault(id(node), path)
            for key, value in node.value:
                self.lines[(*path, key.value)] = key.start_mark.line + 1
                self._walk(value, (*path, key.value))
                self.lines[(*path, key.value)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i))

    def find(self, path: tuple[Any, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


@dataclass(frozen=True)
class _Repeat:
    mapping: yaml.MappingNode
    key: Any
    first_line: int
    line: int


class _Loader(yaml.SafeLoader):
    """SafeLoader that notes every key repeated in one mapping (merged ``<<`` keys aside)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeats: list[_Repeat] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    self.repeats.append(_Repeat(node, key, seen[key], line))
                else:
                    seen[key] = line
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
        return super().construct_mapping(node, deep=deep)


@dataclass
class Document:
    """The YAML data, the line of each path, and the keys written twice."""

    data: Any
    lines: Lines
    problems: list[ConfigProblem] = field(default_factory=list)


def load_yaml(text: str, *, source: str) -> Document:
    """Parse ``text``; raise ConfigError when it is not YAML.

    A key written twice is a problem at the second one's path and line, naming the first.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines = Lines(node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [ConfigProblem("(yaml)", f"not valid YAML: {problem}", line)], source=source
        ) from None
    finally:
        loader.dispose()
    problems = []
    for repeat in loader.repeats:
        path = (*lines.paths.get(id(repeat.mapping), ()), repeat.key)
        problems.append(
            ConfigProblem(
                format_path(path), f"duplicate key, first at line {repeat.first_line}", repeat.line
            )
        )
    return Document(data, lines, problems)


def read_text(path: Path) -> str:
    """The file's text; a ConfigError names the file, line and byte when it is not UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [
                ConfigProblem(
                    "(file)",
                    f"no such file: {path} (give it with -c PATH after the command, or set "
                    "STOCKSYNC_CONFIG; commands that only read the state also work with "
                    "STOCKSYNC_STATE_URL alone)",
                )
            ],
            source=str(path),
        ) from None
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem("(file)", f"cannot read: {exc}")], source=str(path)
        ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            [
                ConfigProblem(
                    "(file)",
                    f"byte 0x{raw[exc.start]:02x} at offset {exc.start} (column {column}) is "
                    f"not UTF-8: save {path} as UTF-8",
                    line,
                )
            ],
            source=str(path),
        ) from None
