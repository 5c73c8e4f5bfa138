"""The one check of a model-factory command's usage error, shared by the tests of every command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def usage_error(
    prog: str,
    parse: Callable[[list[str]], Any],
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
) -> str:
    """``parse`` refuses ``argv`` while parsing: exit status 2 and one line on stderr,
    ``PROG: error: ... (see PROG --help)``; the line."""
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith(f"{prog}: error: ") and err.endswith(f" (see {prog} --help)\n"), err
    return err
