"""The windows a distillation run (:mod:`tools.bank.distill`) trains and evaluates on, and the
teachers' soft outputs on its training windows.

The subjects follow the build (:func:`tools.data.stage_experiments`): a refit bank
(``provenance.refit``) fits on the train and validation subjects and has no validation windows.
The training windows are index-aligned across resolutions
(:func:`tools.bank.windows.aligned_windows` with the build's hop), so row i is the same signal for
a teacher and a student at another resolution; the soft targets are computed once, before any
member changes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agent.windowing import Normalizer
from tools.bank.distill_plan import DistillPlan
from tools.bank.teachers import ensemble_soft_targets
from tools.bank.windows import ResWindows, aligned_windows, eval_windows
from tools.data import DataArg, load_experiments, stage_experiments
from tools.train_baseline import SMOKE_SUBJECTS


@dataclass(frozen=True)
class DistillData:
    source: str  # the dataset source note, for provenance
    experiments: int
    fit_subjects: tuple[int, ...]
    hop128: int  # the build's 50 Hz training hop
    norm: Normalizer  # the teacher's (every member of a bank has the same)
    inputs: dict[int, torch.Tensor]  # normalised training windows per resolution
    y: torch.Tensor  # their labels (one per row, at every resolution)
    soft_at: dict[int, torch.Tensor]  # the soft targets the students of each resolution learn
    teacher_fit_accuracy: float  # mean over resolutions of the soft targets' train accuracy
    vals: dict[int, ResWindows | None]  # validation windows per resolution (None: refit bank)
    tests: dict[int, ResWindows]  # test windows per resolution


def distill_data(bank_dir: Path, plan: DistillPlan, data: DataArg, smoke: bool) -> DistillData:
    """Load the experiments, cut the windows of every resolution the plan's members take, and
    compute the teachers' soft targets (teacher files in ``bank_dir``)."""
    teacher_entry = plan.teachers[0]
    prov = teacher_entry.provenance
    refit = bool(prov.get("refit", False))
    hop128 = int(prov.get("train_config", {}).get("train_hop128", 32))
    experiments, source = load_experiments(data, SMOKE_SUBJECTS if smoke else None)
    stage = stage_experiments(experiments, refit)
    res = sorted({m.resolution or 0 for m in [*plan.students, *plan.teachers]} - {0}, reverse=True)
    fit = aligned_windows(stage.fit, tuple(res), hop128=hop128)
    norm = teacher_entry.normalization
    # per resolution, once: the normalised training windows
    inputs = {r: torch.from_numpy(norm(fit.x[r])) for r in res}
    y = torch.from_numpy(fit.y)
    if plan.by_res is not None:  # soft targets per resolution, each from its own teacher
        soft_at = {r: ensemble_soft_targets(bank_dir, [t], inputs) for r, t in plan.by_res.items()}
    else:
        soft = ensemble_soft_targets(bank_dir, plan.teachers, inputs)
        soft_at = {r: soft for r in res}
    teacher_fit_acc = float(
        np.mean([float((soft_at[r].argmax(1) == y).float().mean()) for r in soft_at])
    )
    return DistillData(
        source=source,
        experiments=len(experiments),
        fit_subjects=stage.fit_subjects,
        hop128=hop128,
        norm=norm,
        inputs=inputs,
        y=y,
        soft_at=soft_at,
        teacher_fit_accuracy=teacher_fit_acc,
        # per resolution, once: the validation and test windows
        vals={r: eval_windows(stage.val, r) if stage.val else None for r in inputs},
        tests={r: eval_windows(stage.test, r) for r in inputs},
    )
