"""The load experiment's figures (:mod:`tools.load_experiment`): the runs' summaries as a
Markdown table, and the plot of inference latency, background load and the running member's
MACs over time."""

from __future__ import annotations

from pathlib import Path

from tools.load_run import ExperimentConfig, Run


def plot(runs: list[Run], macs: dict[str, int], cfg: ExperimentConfig, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    for r in runs:
        axes[0].plot(r.t, r.latency_ms, ".", ms=2, label=r.mode)
    axes[0].axhline(cfg.deadline_ms, color="k", ls="--", lw=1, label="deadline")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("inference latency (ms)")
    axes[0].legend(loc="upper left", fontsize=8, markerscale=4)
    ref = runs[0]
    axes[1].step(ref.t, ref.load, where="post", color="tab:red")
    axes[1].set_ylabel("busy load processes")
    for r in runs:
        axes[2].step(r.t, [macs[m] / 1e6 for m in r.model], where="post", label=r.mode)
    axes[2].set_ylabel("running member (M MACs)")
    axes[2].set_xlabel("time (s)")
    axes[2].legend(loc="upper left", fontsize=8)
    fig.suptitle(
        f"Load experiment: deadline {cfg.deadline_ms:g} ms, board emulated x{cfg.work_factor}, "
        f"replay x{cfg.speed:g}"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def table(runs: list[Run]) -> str:
    head = (
        "| run | windows | p50 ms | p99 ms | deadline misses | accuracy | mJ/window | switches |"
        " monitor CPU |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for r in runs:
        s = r.summary
        acc = f"{100 * s['accuracy']:.2f}%" if s["accuracy"] is not None else "-"
        mj = f"{s['energy_mj_per_window']:.2f}" if s["energy_mj_per_window"] is not None else "-"
        mon = f"{100 * s['monitor_cpu_share']:.2f}%" if s["monitor_cpu_share"] is not None else "-"
        rows.append(
            f"| {s['mode']} | {s['windows']} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
            f"{100 * s['miss_rate']:.1f}% | {acc} | {mj} | {s['switches']} | {mon} |"
        )
    return "\n".join(rows)
