"""Checks of values read from users' files: sweep configs, learning-rate tables, thresholds.

Each checker takes the value and its key path (``models[2]``, ``data.spectrum.kind``,
``overrides[0].alpha``) and returns the value, typed, or raises UsageError with one line naming
the path, the value and what is allowed: ``k[1]: 51 is not allowed; expected an integer from 1
to 50``. Callers prefix the file (or preset) the value came from.
"""
from __future__ import annotations

import math
import reprlib
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import yaml

from .errors import UsageError

T = TypeVar("T")


_SHORT = reprlib.Repr()      # keyword arguments only from Python 3.12
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxlong, _SHORT.maxother = 3, 50, 40, 50
_SHORT.maxdict = _SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = 4


def show(value: Any) -> str:
    """A value as an error message quotes it: cut while it is rendered (reprlib stops after a
    few items and levels, so a YAML alias bomb costs microseconds, not gigabytes), then at 60
    characters."""
    text = _SHORT.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def bad(path: str, value: Any, allowed: str) -> UsageError:
    """The one-line error for a value that is not allowed."""
    return UsageError(f"{path}: {show(value)} is not allowed; expected {allowed}")


def mapping(value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()
            ) -> dict:
    """A mapping whose keys are all in ``allowed`` and include ``required`` (path "" is the
    top level of a file)."""
    allowed = tuple(allowed)
    if not isinstance(value, dict):
        raise bad(path or "file", value, f"a mapping with keys {', '.join(allowed)}")
    prefix = f"{path}." if path else ""
    for key in value:
        if key not in allowed:
            shown = key if isinstance(key, str) and key.isprintable() else repr(key)
            raise UsageError(f"{prefix}{shown}: unknown key; expected one of {', '.join(allowed)}")
    for key in required:
        if key not in value:
            raise UsageError(f"{prefix}{key}: missing; this key is required")
    return value


def integer(value: Any, path: str, low: int, high: int | None = None) -> int:
    """An integer in [low, high] (no upper bound when high is None); booleans are not."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        upper = f" to {high}" if high is not None else " or more"
        raise bad(path, value, f"an integer from {low}{upper}")
    return value


def number(value: Any, path: str, ok: Callable[[float], bool], what: str) -> float:
    """A finite float for which ``ok`` holds; numeric strings count, since YAML 1.1 reads
    '1e-3' (no dot) as text."""
    try:
        parsed = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        parsed = math.nan
    if not (math.isfinite(parsed) and ok(parsed)):
        raise bad(path, value, what)
    return parsed


def choice(value: Any, path: str, allowed: Iterable[str]) -> str:
    """One of the names in ``allowed``."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise bad(path, value, f"one of {', '.join(allowed)}")
    return value


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise bad(path, value, "true or false")
    return value


def text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise bad(path, value, "text")
    return value


def items(value: Any, path: str, item: Callable[[Any, str], T], unique: bool = True
          ) -> tuple[T, ...]:
    """A non-empty list, each element checked by ``item(element, 'path[i]')``."""
    if not isinstance(value, list) or not value:
        raise bad(path, value, "a non-empty list")
    out = tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))
    if unique and len(set(out)) != len(out):
        raise bad(path, value, "a list without repeated values")
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the
    last one silently: ``max_epochs: 300`` then ``max_epochs: 40`` ran 40)."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":     # '<<' merges may override
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:                                 # unhashable: the loader says so
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {show(key)} appears twice in one mapping",
                key_node.start_mark)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(content: str, what: str) -> Any:
    """Parse YAML (a key given twice is refused); a syntax error becomes a one-line
    UsageError starting with ``what``."""
    try:
        return yaml.load(content, Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: bad dates
        raise UsageError(f"{what}: not valid YAML ({' '.join(str(exc).split())})") from None


def unreadable(exc: BaseException) -> str:
    """Why a file could not be read, in words (never an exception's class name)."""
    if isinstance(exc, UnicodeDecodeError):
        return "not text: binary content"
    if isinstance(exc, IsADirectoryError):
        return "a directory, not a file"
    if isinstance(exc, OSError):
        return exc.strerror or "I/O error"
    return "unreadable"


def read_yaml_file(path: Path, what: str) -> Any:
    """A YAML file's content; a missing or unreadable file is a one-line UsageError."""
    if not path.is_file():
        raise UsageError(f"{what}: {path} does not exist")
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what}: cannot read {path} ({unreadable(exc)})") from None
    return read_yaml(content, f"{what}: {path}")
