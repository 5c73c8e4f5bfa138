"""build_table: a TOML table into a frozen dataclass, every key and type checked."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import pytest

from agent.errors import ConfigError
from agent.toml_tables import build_table


@dataclass(frozen=True)
class Inner:
    rate: float = 1.0
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str = ""
    count: int = 0
    on: bool = False
    tags: tuple[str, ...] = ()
    inner: Inner = field(default_factory=Inner)
    hidden: str = field(default="set by the caller", metadata={"toml": False})


def test_builds_nested_tables_and_converts_types() -> None:
    got = build_table(
        Outer,
        {"name": "x", "count": 3, "tags": ["p", "q"], "inner": {"rate": 2, "mode": "b"}},
        "",
        "f.toml",
    )
    assert got == Outer(name="x", count=3, tags=("p", "q"), inner=Inner(rate=2.0, mode="b"))
    assert isinstance(got.inner.rate, float)
    assert isinstance(got.tags, tuple)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"nope": 1}, "f.toml: unknown key 'nope' (known: count, inner, name, on, tags)"),
        ({"hidden": "x"}, "unknown key 'hidden'"),
        ({"inner": {"nope": 1}}, "unknown key 'inner.nope' (known: mode, rate)"),
        ({"inner": 3}, "f.toml: [inner] must be a table"),
        ({"count": True}, "count must be an integer (got bool True)"),
        ({"count": 1.5}, "count must be an integer (got float 1.5)"),
        ({"on": 1}, "on must be true or false (got int 1)"),
        ({"name": 5}, "name must be a string (got int 5)"),
        ({"name": "a\x00b"}, "name must not contain a NUL character"),
        ({"tags": "p"}, "tags must be a list of strings (got 'p')"),
        ({"tags": ["p", 1]}, "tags must be a list of strings"),
        ({"tags": ["\x00"]}, "tags must not contain a NUL character"),
        ({"inner": {"mode": "c"}}, "inner.mode must be one of 'a' | 'b' (got 'c')"),
        ({"inner": {"rate": math.nan}}, "inner.rate must be a finite number (got nan)"),
        ({"inner": {"rate": math.inf}}, "inner.rate must be a finite number (got inf)"),
        ({"inner": {"rate": "1"}}, "inner.rate must be a number (got str '1')"),
    ],
)
def test_refuses_with_the_dotted_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_table(Outer, table, "", "f.toml")
    assert message in str(exc.value)
    assert str(exc.value).startswith("f.toml: ")
