"""YAML input files whose every error names the file, the line and the key.

Scenario files and study files are read as YAML nodes (yaml.compose keeps each node's
line; a plain load would not) and checked node by node, so that a mistake reads as one
line — `study.yaml:7: matrix.database: must be a list …` — before anything runs."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from redline.errors import UserError

NULL = "tag:yaml.org,2002:null"
TOP = "(top level)"


@dataclass(frozen=True)
class NodeFile:
    """Where the nodes come from, and the error class their problems are raised as."""

    file: str
    error: type[UserError] = UserError

    def fail(self, node: yaml.Node | None, key: str, reason: str) -> UserError:
        line = node.start_mark.line + 1 if node is not None else 1
        return self.error(f"{self.file}:{line}: {key}: {reason}")

    def read(self, path: Path, what: str) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read {what} {self.file!r}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise self.error(f"{self.file}:1: (file): not UTF-8 text") from None

    def compose(self, text: str) -> yaml.Node | None:
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            raise self.error(f"{self.file}:{line}: (yaml): {exc.problem or exc.context or 'not valid YAML'}") from None
        except yaml.YAMLError as exc:
            raise self.error(f"{self.file}:1: (yaml): {str(exc).splitlines()[0]}") from None

    def mapping(
        self,
        node: yaml.Node,
        key: str,
        allowed: Collection[str],
        other: Collection[str] = (),
        other_kind: str = "",
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping's entries by key, each key known and given once."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"must be a mapping, not {kind(node)}")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise self.fail(k, key, "keys must be plain words")
            if k.value in out:
                raise self.fail(k, sub(key, k.value), "given twice")
            if k.value not in allowed:
                if k.value in other:
                    raise self.fail(k, sub(key, k.value), f"only in {other_kind} entries")
                raise self.fail(k, sub(key, k.value), f"unknown key; known: {', '.join(sorted(allowed))}")
            out[k.value] = (k, v)
        return out

    def pairs(self, node: yaml.Node, key: str) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
        """A mapping of free names to values, in the file's order."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"must be a mapping of names to values, not {kind(node)}")
        out = []
        seen: set[str] = set()
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise self.fail(k, key, "names must be plain text")
            if k.value in seen:
                raise self.fail(k, sub(key, k.value), "given twice")
            seen.add(k.value)
            out.append((k, v))
        return out

    def scalar(self, node: yaml.Node, key: str) -> str:
        """A scalar as written (2.10 stays "2.10", not the float 2.1)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == NULL:
            raise self.fail(node, key, f"must be a value, not {kind(node)}")
        return str(node.value)

    def string(self, node: yaml.Node, key: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            raise self.fail(node, key, f"must be text, not {kind(node)}")
        return str(node.value)

    def value(self, node: yaml.Node) -> Any:
        """The plain Python value of a scalar (typed as YAML types it: true, 4, 0.5, text)."""
        return yaml.SafeLoader(" ").construct_object(node, deep=True)


def sub(key: str, name: str | int) -> str:
    """The dotted key of an entry: `matrix.database`, `variants[2]`."""
    if isinstance(name, int):
        return f"{key}[{name}]"
    return name if key == TOP else f"{key}.{name}"


def kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.rsplit(":", 1)[-1]
    return {"null": "empty", "int": "a number", "float": "a number", "bool": "true/false"}.get(
        tag, f"text {node.value!r}" if tag == "str" else f"{tag} {node.value!r}"
    )


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL
