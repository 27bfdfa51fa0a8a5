"""JSON for frozen result dataclasses, driven by their type hints.

One converter instead of a hand-written `to_dict`/`from_dict` pair per class: a key renamed
in a result class is renamed for every writer and reader at once. Reading is strict about
types (a run.json that says `"n": "fast"` is refused with the path of the bad key) and
lenient about presence (a key a class gives a default may be absent: older or partial
run folders stay readable). Unknown keys are ignored, so later additions do not break
older readers.

Field metadata:
    key:  the JSON key when it differs from the field name (e.g. "lambda").
    skip: never written (derived or process-local values).
A class may define `_json_extra(self) -> dict` for derived values worth writing (a worker's
CPU share), `_json_out(self, d) -> dict` to reshape what is written, and
`_json_in(cls, d) -> dict` to adapt its raw JSON before it is read (old spellings).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


class SchemaError(ValueError):
    """A JSON document does not have the shape its result class describes."""


_hints_cache: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    h = _hints_cache.get(cls)
    if h is None:
        h = _hints_cache[cls] = get_type_hints(cls)
    return h


def _key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))


def to_json(value: Any) -> Any:
    """A JSON-able value (dicts, lists, str, numbers, None) for a dataclass or plain value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.metadata.get("skip"):
                continue
            out[_key(f)] = to_json(getattr(value, f.name))
        extra = getattr(value, "_json_extra", None)
        if extra is not None:
            out.update(to_json(extra()))
        shape = getattr(value, "_json_out", None)
        return shape(out) if shape is not None else out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; readers take None as "not measured"
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        return to_json(value.item())  # NumPy scalars
    return value


def from_json(cls: type[T], data: Any, path: str = "$") -> T:
    """An instance of dataclass `cls` from its JSON form; SchemaError names the bad key."""
    return typing.cast(T, _read(cls, data, path))


def _read(tp: Any, data: Any, path: str) -> Any:
    if tp is Any:
        return data
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        if data is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _read(a, data, path)
            except SchemaError as exc:
                errors.append(str(exc))
        raise SchemaError(errors[0] if len(errors) == 1 else f"{path}: {data!r} matches none of {tp}")
    if origin is typing.Literal:
        if data not in get_args(tp):
            raise SchemaError(f"{path}: {data!r} is not one of {get_args(tp)}")
        return data
    if origin in (tuple, list):
        if not isinstance(data, list):
            raise SchemaError(f"{path}: expected a list, got {type(data).__name__}")
        args = get_args(tp)
        item = args[0] if args else Any
        items = [_read(item, v, f"{path}[{i}]") for i, v in enumerate(data)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(data, dict):
            raise SchemaError(f"{path}: expected an object, got {type(data).__name__}")
        args = get_args(tp)
        val = args[1] if len(args) == 2 else Any
        return {str(k): _read(val, v, f"{path}.{k}") for k, v in data.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _read_dataclass(tp, data, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError:
            raise SchemaError(f"{path}: {data!r} is not a {tp.__name__}") from None
    if tp is float:
        if data is None:
            return math.nan  # written for a NaN
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
        raise SchemaError(f"{path}: expected a number, got {data!r}")
    if tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
        if isinstance(data, float) and data.is_integer():
            return int(data)
        raise SchemaError(f"{path}: expected an integer, got {data!r}")
    if tp is bool:
        if isinstance(data, bool):
            return data
        raise SchemaError(f"{path}: expected true or false, got {data!r}")
    if tp is str:
        if isinstance(data, str):
            return data
        raise SchemaError(f"{path}: expected a string, got {data!r}")
    if tp is dict:
        if isinstance(data, dict):
            return data
        raise SchemaError(f"{path}: expected an object, got {type(data).__name__}")
    raise TypeError(f"no JSON reader for {tp!r} at {path}")


def _read_dataclass(cls: type, data: Any, path: str) -> Any:
    adapt = getattr(cls, "_json_in", None)
    if adapt is not None and isinstance(data, dict):
        data = adapt(data)
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = _key(f)
        if key in data and not f.metadata.get("skip"):
            kwargs[f.name] = _read(hints[f.name], data[key], f"{path}.{key}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SchemaError(f"{path}: {key!r} is missing")
    return cls(**kwargs)


class JsonRecord:
    """Mixin: `to_json()` and `from_json()` for a frozen dataclass."""

    def to_json(self) -> dict[str, Any]:
        return typing.cast(dict[str, Any], to_json(self))

    @classmethod
    def from_json(cls: type[T], data: Any, path: str = "$") -> T:
        return from_json(cls, data, path)
