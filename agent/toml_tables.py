"""Frozen dataclasses from TOML tables: every key known, every value of its field's type.

:func:`build_table` walks a parsed TOML table against a dataclass (nested dataclasses are nested
tables) and raises a :class:`ConfigError` that names the file and the dotted key for an unknown
key, a wrong type, a NUL character in a string, or a NaN or infinite float. Field types may be
``bool``, ``int``, ``float``, ``str``, a ``Literal`` of values, ``tuple[str, ...]`` or a nested
dataclass. Range checks are the caller's (:mod:`agent.profile`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, get_args, get_origin

from agent.errors import ConfigError
from agent.profile_checks import got


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def _check_value(value: Any, tp: Any, key: str, where: str) -> Any:
    if get_origin(tp) is tuple:  # tuple[str, ...]: a TOML list of strings
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{where}: {key} must be a list of strings {got(value)}")
        if any("\x00" in v for v in value):
            raise ConfigError(f"{where}: {key} must not contain a NUL character")
        return tuple(value)
    if get_origin(tp) is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {key} must be one of {_type_name(tp)} {got(value)}")
        return value
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        raise ConfigError(
            f"{where}: {key} must be {_type_name(tp)} (got {type(value).__name__} {value!r})"
        )
    if tp is str and "\x00" in value:  # TOML allows "\u0000"; no path, host or name may hold it
        raise ConfigError(f"{where}: {key} must not contain a NUL character")
    if tp is float:
        if not math.isfinite(value):  # TOML has nan and inf; no key of ours means either
            raise ConfigError(f"{where}: {key} must be a finite number {got(value)}")
        return float(value)
    return value


def build_table(cls: type[Any], table: Any, prefix: str, where: str) -> Any:
    """An instance of the dataclass ``cls`` from ``table``; ``prefix`` is the table's dotted key
    (``""`` at the top), ``where`` the file the messages name. A field whose metadata has
    ``"toml": False`` is not a key (the caller sets it)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{prefix.rstrip('.')}] must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("toml", True)}
    for key in table:
        if key not in fields:
            raise ConfigError(
                f"{where}: unknown key '{prefix}{key}' (known: {', '.join(sorted(fields))})"
            )
    kwargs: dict[str, Any] = {}
    for name, value in table.items():
        tp = hints[name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            kwargs[name] = build_table(tp, value, f"{prefix}{name}.", where)
        elif isinstance(tp, types.UnionType):
            raise TypeError(f"unsupported field type {tp}")  # a bug in this module
        else:
            kwargs[name] = _check_value(value, tp, f"{prefix}{name}", where)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
