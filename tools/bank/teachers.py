"""The teachers of member distillation (:mod:`tools.bank.distill`): which members teach, and
their soft outputs on the training windows (one teacher, an ensemble, or one per resolution)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from agent.manifest import ModelEntry
from tools.bank.parent import plain_from_onnx
from tools.bank.plain_arch import model_config


def default_teacher(members: Sequence[ModelEntry]) -> ModelEntry:
    """The full configuration: width 1.0 at the highest resolution among the members."""
    full = [m for m in members if m.width == 1.0]
    if not full:
        raise ValueError("no width-1.0 member to distil from")
    return max(full, key=lambda m: m.resolution or 0)


def pick_teachers(
    members: Sequence[ModelEntry], ids: str | None, ensemble_width: float | None
) -> list[ModelEntry]:
    """The teacher members: the ids named (comma-separated), every member of width at least
    ``ensemble_width``, or the full configuration. Raises ValueError naming what is missing."""
    if ensemble_width is not None:
        wide = [m for m in members if (m.width or 0) >= ensemble_width - 1e-9]
        if not wide:
            raise ValueError(f"no member of width >= {ensemble_width:g} in the bank")
        return wide
    if ids:
        by_id = {m.id: m for m in members}
        names = [i for i in ids.split(",") if i]
        missing = [i for i in names if i not in by_id]
        if missing or not names:
            raise ValueError(f"no teacher {','.join(missing) or repr(ids)} in the bank")
        return [by_id[i] for i in dict.fromkeys(names)]
    return [default_teacher(members)]


def teachers_at_resolution(
    members: Sequence[ModelEntry], students: Sequence[ModelEntry]
) -> dict[int, ModelEntry]:
    """For each student resolution, the width-1.0 member at that resolution (ValueError naming
    the resolutions that have none)."""
    full = {m.resolution: m for m in members if m.width == 1.0 and m.resolution}
    need = sorted({s.resolution for s in students if s.resolution}, reverse=True)
    missing = [r for r in need if r not in full]
    if missing:
        raise ValueError(f"no width-1.0 member at resolution {', '.join(map(str, missing))}")
    return {r: full[r] for r in need}


@torch.no_grad()
def soft_targets(teacher: torch.nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    teacher.eval()
    return torch.cat([F.softmax(teacher(x[a : a + batch]), dim=1) for a in range(0, len(x), batch)])


def ensemble_soft_targets(
    bank_dir: Path, teachers: Sequence[ModelEntry], inputs: dict[int, torch.Tensor]
) -> torch.Tensor:
    """The mean of the teachers' softmax outputs, each on ``inputs`` at its own resolution
    (index-aligned rows: row i is the same signal for every teacher)."""
    probs = []
    for t in teachers:
        assert t.resolution is not None
        model = plain_from_onnx(bank_dir / t.file, model_config(t))
        probs.append(soft_targets(model, inputs[t.resolution]))
    return torch.stack(probs).mean(0)
