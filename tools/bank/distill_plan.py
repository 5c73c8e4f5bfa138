"""Who learns from whom in a distillation run (:mod:`tools.bank.distill`): the students and their
teachers, and every refusal made before any work (an unknown member or teacher, a teacher named a
student while ``--keep-teacher`` leaves it alone, a member distilled already, a member file that
is not the manifest's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.manifest import Manifest, ModelEntry
from tools.bank.members import FAMILY
from tools.bank.staging import check_member_files
from tools.bank.teachers import pick_teachers, teachers_at_resolution


@dataclass(frozen=True)
class DistillPlan:
    students: list[ModelEntry]
    teachers: list[ModelEntry]
    by_res: dict[int, ModelEntry] | None
    """With ``--teacher-at-resolution``: each student resolution's own teacher (else None)."""

    def own_teacher(self, student: ModelEntry) -> dict[str, str]:
        """The provenance fields naming ``student``'s own teacher when each resolution has its
        own (they replace the run's ``teacher`` and ``teacher_sha256``); else none."""
        if self.by_res is None:
            return {}
        t = self.by_res[student.resolution or 0]
        return {"teacher": t.id, "teacher_sha256": t.sha256}


def plan_distillation(
    bank: Manifest,
    bank_dir: Path,
    shown: Path,
    *,
    teacher: str | None,
    ensemble_width: float | None,
    at_resolution: bool,
    members: str | None,
    keep_teacher: bool,
) -> DistillPlan:
    """The students and teachers the options name among ``bank``'s width-resolution members
    (files in ``bank_dir``); SystemExit with one line, naming ``shown`` (the folder the user
    named), for anything that makes the run impossible."""
    grid = [m for m in bank.models if m.family == FAMILY]
    try:
        if at_resolution:
            teachers = list(teachers_at_resolution(grid, grid).values())
        else:
            teachers = pick_teachers(grid, teacher, ensemble_width)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    teacher_ids = {t.id for t in teachers}
    if members:
        wanted = set(members.split(","))
        unknown = wanted - {m.id for m in grid}
        if unknown:
            raise SystemExit(f"error: not width-resolution members of the bank: {sorted(unknown)}")
        kept = sorted(wanted & teacher_ids)
        if kept and keep_teacher:
            raise SystemExit(f"error: {', '.join(kept)}: a teacher and --keep-teacher is set")
        students = [m for m in grid if m.id in wanted]
    else:
        students = [m for m in grid if m.id not in teacher_ids or not keep_teacher]
    if not students:
        raise SystemExit(f"error: no member to distil in {shown / 'manifest.json'}")
    by_res = None
    if at_resolution:  # only the teachers the students need
        try:
            by_res = teachers_at_resolution(grid, students)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        teachers = list(by_res.values())
    done = [m.id for m in students if "distilled" in m.provenance]
    if done:
        raise SystemExit(
            f"error: already distilled: {', '.join(done)} (build distils by default; to distil "
            "here, rebuild the bank with python -m tools.bank.build --distill-epochs 0)"
        )
    reads = {**{t.id: t for t in teachers}, **{m.id: m for m in students}}.values()
    try:
        check_member_files(bank_dir, reads)  # missing, not the manifest's, not a readable ONNX
    except SystemExit as exc:
        raise SystemExit(str(exc.code).replace(str(bank_dir), str(shown))) from None
    return DistillPlan(students, teachers, by_res)
