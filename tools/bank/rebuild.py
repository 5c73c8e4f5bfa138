"""One command that rebuilds the whole model bank from the dataset.

    python -m tools.bank.rebuild               # models/ from data/hapt: about 1.5 h on a 2-core VM
    python -m tools.bank.rebuild --dry-run     # the steps, without running them
    python -m tools.bank.rebuild --from bank   # resume at a step (after a failure or Ctrl-C)
    python -m tools.bank.rebuild --smoke       # the same chain on 4 subjects (CI, ~30 s)

The steps, in order, each its own ``python -m`` process (so each one's seeding, threads and
clean-up are what they are when run by hand), are the recorded rebuild chain (the manifest's
``rebuild``, docs/model-bank.md "Rebuild"):

``import``
    ``tools.import_hapt``: only when the dataset folder does not hold the full import;
``sel-base``, ``sel-bank``
    a selection bank (the validation subjects held out): ``tools.train_baseline --no-refit`` and
    ``tools.bank.build --compress``; its int8 trials decide the bank's int8 variants;
``base``, ``bank``
    the bank: ``tools.train_baseline`` (refit) and ``tools.bank.build --refit --compress
    --int8-decide-on SELECTION/compress-report.json``;
``paced``
    ``tools.bank.paced_latency`` (the adaptive policy's start-up latency figures);
``report``
    ``tools.bank.report``: docs/model-bank.md and its plots for ``models/``, the same files
    beside any other bank (``BANK/model-bank.md``, ``BANK/img``);
``recompare``
    ``tools.bank.independent --recompare BANK/independent-report.json``, when that report is
    there: the collaborative side of the comparison with the independent baselines, redone
    against the new members (the baselines themselves are trained by ``tools.bank.independent``).

A step that fails stops the chain with one line naming it and the command that resumes there
(the run's own options and ``--from`` the step).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.cli import (
    ArgumentParser,
    CommandError,
    Terminated,
    path_arg,
    positive_int,
    run_main,
    seed,
)
from tools.data import (
    AUTO,
    DEFAULT_DATA,
    EXPECTED_RECORDINGS,
    PICKLE,
    data_source,
    data_text,
    recordings_in,
)

COMMAND = "python -m tools.bank.rebuild"
DEFAULT_BANK = Path("models")
DEFAULT_SELECTION = Path("build/bank-sel")
SMOKE_ROOT = Path("build/rebuild-smoke")
EPOCHS = 40  # the committed bank's supernet epochs (tools.bank.build's column2d default)
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STEPS = ("import", "sel-base", "sel-bank", "base", "bank", "paced", "report", "recompare")


@dataclass(frozen=True)
class Step:
    name: str
    module: str
    args: tuple[str, ...]

    def command(self) -> str:
        return shlex.join(["python", "-m", self.module, *self.args])


@dataclass(frozen=True)
class Options:
    bank: Path = DEFAULT_BANK
    selection: Path = DEFAULT_SELECTION
    data: str = AUTO  # as --data takes it: auto, pickle, or a folder
    seed: int = 0
    epochs: int = EPOCHS
    smoke: bool = False


def data_folder(opts: Options) -> Path | None:
    """The folder of recordings the rebuild reads (``None``: the package's pickle)."""
    if opts.data == PICKLE:
        return None
    return DEFAULT_DATA if opts.data == AUTO else Path(opts.data)


def needs_import(folder: Path | None) -> bool:
    return folder is not None and len(recordings_in(folder)) != EXPECTED_RECORDINGS


def plan(opts: Options, imported: bool, has_independent: bool) -> list[Step]:
    """The steps of a rebuild with ``opts``. ``imported``: the dataset folder holds the full
    import already; ``has_independent``: the bank holds an independent-report.json to redo."""
    folder = data_folder(opts)
    # a smoke run reads whatever --data gives (the pickle when nothing is imported): no import
    data = ["--data", opts.data if opts.smoke or folder is None else str(folder)]
    common = [*data, "--seed", str(opts.seed), *(["--smoke"] if opts.smoke else [])]
    epochs = [] if opts.smoke else ["--epochs", str(opts.epochs)]
    sel, bank = str(opts.selection), str(opts.bank)
    steps: list[Step] = []
    if not imported and not opts.smoke and folder is not None:
        steps.append(Step("import", "tools.import_hapt", ("--out", str(folder))))
    build = ["--arch", "column2d", *epochs, *common]
    steps += [
        Step("sel-base", "tools.train_baseline", ("--no-refit", "--out", sel, *common)),
        Step("sel-bank", "tools.bank.build", (*build, "--out", sel, "--compress")),
        Step("base", "tools.train_baseline", ("--out", bank, *common)),
        Step(
            "bank",
            "tools.bank.build",
            (
                *build,
                "--refit",
                "--out",
                bank,
                "--compress",
                "--int8-decide-on",
                str(opts.selection / "compress-report.json"),
            ),
        ),
        Step(
            "paced",
            "tools.bank.paced_latency",
            ("--bank", bank, *(["--rounds", "2", "--quiet"] if opts.smoke else [])),
        ),
    ]
    report = ["--models", bank]
    if opts.bank.resolve() != DEFAULT_BANK.resolve():  # docs/ describes models/ only
        report += ["--doc", str(opts.bank / "model-bank.md"), "--img", str(opts.bank / "img")]
    if opts.smoke:
        report += ["--rounds", "2", "--runs", "2"]
    steps.append(Step("report", "tools.bank.report", tuple(report)))
    if has_independent:
        again = str(opts.bank / "independent-report.json")
        steps.append(
            Step("recompare", "tools.bank.independent", ("--bank", bank, "--recompare", again))
        )
    return steps


def resume(args: argparse.Namespace, step: Step) -> str:
    """The command line that resumes this rebuild at ``step``: the options it was given, with
    ``--from`` naming the step."""
    kept: list[str] = []
    skip = False
    for arg in args.argv:
        if skip:
            skip = False
        elif arg == "--from":
            skip = True
        elif not arg.startswith("--from="):
            kept.append(arg)
    return shlex.join([*COMMAND.split(), *kept, "--from", step.name])


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def run(args: argparse.Namespace) -> None:
    opts = Options(
        bank=args.bank,
        selection=args.selection,
        data=data_text(args.data),
        seed=args.seed,
        epochs=args.epochs,
        smoke=args.smoke,
    )
    folder = data_folder(opts)
    steps = plan(
        opts,
        imported=not needs_import(folder),
        has_independent=(opts.bank / "independent-report.json").is_file() and not opts.smoke,
    )
    names = [s.name for s in steps]
    if args.start is not None:
        if args.start not in names:
            raise CommandError(
                f"--from {args.start}: not a step of this rebuild (its steps: {', '.join(names)})"
            )
        steps = steps[names.index(args.start) :]
    if args.dry_run:
        for i, step in enumerate(steps, 1):
            print(f"[{i}/{len(steps)}] {step.name}: {step.command()}")
        return
    started = time.monotonic()
    for i, step in enumerate(steps, 1):
        t0, again = time.monotonic(), resume(args, step)
        rc = _run_step(step, f"[{i}/{len(steps)}] {step.name}: {step.command()}", again)
        if rc != 0:
            how = (
                f"was killed by {_signal_name(-rc)}" if rc < 0 else f"failed with exit status {rc}"
            )
            raise CommandError(f"step {step.name} ({step.command()}) {how}; resume with {again}")
        print(f"[{i}/{len(steps)}] {step.name}: done in {time.monotonic() - t0:.0f} s", flush=True)
    print(f"rebuilt {opts.bank} in {time.monotonic() - started:.0f} s ({len(steps)} steps)")


def _run_step(step: Step, header: str, resume_with: str) -> int:
    """Print ``header`` and run one step to its end.

    Ctrl-C from the terminal reaches the step too (one process group): it is left to clean up
    (its staged folders) and end. SIGTERM to this command is passed on to the step. A signal
    that comes while the step is being started is held until it has started, then passed on,
    so that no step runs on after this command has ended."""
    held: list[int] = []

    def hold(signum: int, _frame: object) -> None:
        held.append(signum)

    main_thread = threading.current_thread() is threading.main_thread()
    old = {sig: signal.signal(sig, hold) for sig in _SIGNALS} if main_thread else {}
    try:
        print(header, flush=True)
        proc = subprocess.Popen([sys.executable, "-m", step.module, *step.args])
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    try:
        if held:  # the step never saw it: it started after the signal came
            proc.send_signal(held[0])
            raise Terminated if held[0] == signal.SIGTERM else KeyboardInterrupt
        return proc.wait()
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated) and not held:
            proc.terminate()
        proc.wait()
        print(f"step {step.name} interrupted; resume with {resume_with}", file=sys.stderr)
        raise


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(
        prog=COMMAND,
        description="Rebuild the whole model bank from the dataset: a selection bank, then the "
        "bank (supernet, distilled members, pruned and int8 variants), paced latency, report.",
        epilog="Steps: " + ", ".join(STEPS) + " (import only when the dataset is not imported; "
        "recompare only when BANK/independent-report.json exists). About 1.5 h on a 2-core VM "
        '(--smoke: about 30 s). docs/model-bank.md "Rebuild"',
    )
    ap.add_argument(
        "--bank",
        type=path_arg,
        default=None,
        help=f"bank folder (models; smoke: {SMOKE_ROOT}/bank)",
    )
    ap.add_argument(
        "--selection",
        type=path_arg,
        default=None,
        help=f"selection bank folder ({DEFAULT_SELECTION}; smoke: {SMOKE_ROOT}/sel)",
    )
    ap.add_argument(
        "--data",
        type=data_source,
        default=AUTO,
        help="auto (default: data/hapt, imported first when "
        "it is not), pickle, or a folder of imported recordings",
    )
    ap.add_argument("--seed", type=seed, default=0, help="random seed of every step (0)")
    ap.add_argument(
        "--epochs",
        type=positive_int,
        default=EPOCHS,
        help=f"supernet epochs of both builds ({EPOCHS}; smoke: the builds' own)",
    )
    ap.add_argument("--smoke", action="store_true", help="every step on 4 subjects, few steps")
    ap.add_argument(
        "--from",
        dest="start",
        choices=STEPS,
        default=None,
        help="start at this step (the ones before it are taken as done)",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the steps and stop")
    raw = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(raw)
    args.argv = raw
    if args.bank is None:
        args.bank = SMOKE_ROOT / "bank" if args.smoke else DEFAULT_BANK
    if args.selection is None:
        args.selection = SMOKE_ROOT / "sel" if args.smoke else DEFAULT_SELECTION
    if args.bank.resolve() == args.selection.resolve():
        ap.error("--bank and --selection must be different folders")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
