"""The figures a distillation run (:mod:`tools.bank.distill`) prints and keeps in its report:
one line per member (validation and test accuracy before -> after), and the means over members
(test accuracy is reported only; validation decides)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SUMMARY_KEYS = ("val_before", "val_after", "test_before", "test_after")


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def _mean(vals: Sequence[float | None]) -> float | None:
    got = [v for v in vals if v is not None]
    return float(np.mean(got)) if got else None


def member_line(row: dict[str, Any]) -> str:
    """A member's row (:func:`tools.bank.distill_member.distil_member`) as one printed line."""
    line = (
        f"{row['id']}: val {pct(row['val_before'])} -> {pct(row['val_after'])}, test "
        f"{pct(row['test_before'])} -> {pct(row['test_after'])}, ORT-torch "
        f"{row['ort_vs_torch']:.2g}, {row['seconds']} s"
    )
    runs = row.get("runs") or []
    if runs:  # a soup: what each of its runs had, beside the average
        key = "val_accuracy" if runs[0]["val_accuracy"] is not None else "test_accuracy"
        figures = " / ".join(f"{100 * r[key]:.2f}" for r in runs)
        line += f" (soup of {len(runs)} runs, {key.split('_')[0]} {figures} %)"
    return line


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The mean of each figure over the members that have it (None: none has)."""
    return {k: _mean([r[k] for r in rows]) for k in SUMMARY_KEYS}


def summary_lines(s: dict[str, float | None]) -> list[str]:
    return [
        f"mean val accuracy  {pct(s['val_before'])} -> {pct(s['val_after'])}",
        f"mean test accuracy {pct(s['test_before'])} -> {pct(s['test_after'])} (reported only)",
    ]
