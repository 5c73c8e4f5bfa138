"""Accuracy vs latency and accuracy vs MACs plots of the bank, Pareto front marked (matplotlib).

Pure drawing: points come in as plain rows, the front is computed by :func:`pareto_front`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAMILY_STYLE = {
    "baseline": ("tab:gray", "s"),
    "width-resolution": ("tab:blue", "o"),
    "pruned": ("tab:orange", "D"),
    "int8": ("tab:green", "^"),
}


@dataclass(frozen=True)
class Point:
    id: str
    family: str
    cost: float  # latency (ms) or MACs: lower is better
    accuracy: float  # higher is better


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Points no other point beats on both cost and accuracy, sorted by cost."""
    front: list[Point] = []
    best = float("-inf")
    for p in sorted(points, key=lambda p: (p.cost, -p.accuracy)):
        if p.accuracy > best:
            front.append(p)
            best = p.accuracy
    return front


LABEL_SPOTS = (((5, -9), "left"), ((5, 5), "left"), ((-5, 5), "right"), ((-5, -9), "right"))
"""Where a front member's label may go, in order of preference (offset in points, alignment)."""


def _label_front(ax: Any, front: Sequence[Point]) -> None:
    """Name each front member beside its point: the first spot (below right, above right, above
    left, below left) whose text stays inside the axes and clear of the labels placed before."""
    ax.figure.canvas.draw()  # the limits and the renderer are final now
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed: list[Any] = []
    for p in front:
        for offset, ha in LABEL_SPOTS:
            ann = ax.annotate(
                p.id,
                (p.cost, 100 * p.accuracy),
                fontsize=7,
                xytext=offset,
                ha=ha,
                textcoords="offset points",
            )
            box = ann.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
            if inside and box.y1 <= frame.y1 and not any(box.overlaps(b) for b in placed):
                placed.append(box)
                break
            ann.remove()
        else:  # nowhere is free: the first choice, overlapping
            ann = ax.annotate(
                p.id,
                (p.cost, 100 * p.accuracy),
                fontsize=7,
                xytext=LABEL_SPOTS[0][0],
                textcoords="offset points",
            )
            placed.append(ann.get_window_extent(renderer))


def plot_tradeoff(points: Sequence[Point], xlabel: str, title: str, path: Path, logx: bool) -> Path:
    """Scatter by family, the Pareto front as a line with its members labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 5), dpi=110)
    for fam, (color, marker) in FAMILY_STYLE.items():
        pts = [p for p in points if p.family == fam]
        if pts:
            ax.scatter(
                [p.cost for p in pts],
                [100 * p.accuracy for p in pts],
                c=color,
                marker=marker,
                label=fam,
                s=36,
                alpha=0.85,
            )
    front = pareto_front(points)
    ax.plot(
        [p.cost for p in front],
        [100 * p.accuracy for p in front],
        "k--",
        lw=1,
        label="Pareto front",
    )
    if logx:
        ax.set_xscale("log")
    _label_front(ax, front)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    # outside the axes: inside, it hid the members in its corner (the baseline and its int8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path
