"""The suite's plots: RSS over time per in-memory target, and throughput beside the floor.

They need matplotlib (``pip install -e '.[bench]'``); without it they are skipped.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from _stats import dig

from _suite.summary import KINDS

if TYPE_CHECKING:
    from pathlib import Path

MIB = 1024.0  # ru_maxrss and VmRSS are in KiB


def plot(results: dict[str, Any], img_dir: Path) -> list[Path]:
    """Draw ``rss_over_time.png`` and ``throughput.png`` into ``img_dir``; [] without matplotlib."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
        import matplotlib.ticker  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print("matplotlib is not installed: no plots (pip install -e '.[bench]')", file=sys.stderr)
        return []
    img_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    machine = results["machine"]
    where = f"{machine.get('nproc', '?')} CPUs, {machine.get('cpu_model', '?')}"

    mem = [r for r in results.get("memory") or [] if r.get("rss_samples")]
    if mem:
        fig, ax = plt.subplots(figsize=(9, 5))
        for r in mem:
            xs = [sample[0] for sample in r["rss_samples"]]
            ys = [sample[1] / MIB for sample in r["rss_samples"]]
            label = f"target {r['target']:,}, {r['expected_events']:,} events"
            style = "--" if r["expected_events"] != mem[0]["expected_events"] else "-"
            ax.plot(xs, ys, style, label=label, linewidth=1.2)
        ax.set_xlabel("seconds since start of the process")
        ax.set_ylabel("RSS, summed over the process tree (MiB)")
        ax.set_title(f"indexer run, erc20-unique: RSS over time per in-memory target\n({where})")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(_save(plt, fig, img_dir / "rss_over_time.png"))

    names = [n for n, wl in results["workloads"].items() if wl.get("summary")]
    if names:
        fig, ax = plt.subplots(figsize=(9, 5))
        width = 0.26
        colors = {"background": "#1f77b4", "sync": "#ff7f0e", "floor": "#7f7f7f"}
        labels = {
            "background": "framework, background writes",
            "sync": "framework, --sync-writes",
            "floor": "floor (plain script)",
        }
        for i, kind in enumerate(KINDS):
            meds, lo, hi, xs = [], [], [], []
            for j, name in enumerate(names):
                sp = dig(results["workloads"][name], "summary", kind, "events_per_second")
                if sp is None:
                    continue
                xs.append(j + (i - 1) * width)
                meds.append(sp["median"])
                lo.append(sp["median"] - sp["min"])
                hi.append(sp["max"] - sp["median"])
            if xs:
                ax.bar(
                    xs,
                    meds,
                    width,
                    yerr=[lo, hi],
                    capsize=3,
                    label=labels[kind],
                    color=colors[kind],
                )
                for x, m, up in zip(xs, meds, hi, strict=True):
                    ax.annotate(
                        f"{m / 1000:.0f}k",
                        (x, m + up),
                        ha="center",
                        va="bottom",
                        fontsize=8,
                        xytext=(0, 3),
                        textcoords="offset points",
                    )
        ax.set_xticks(range(len(names)), names)
        ax.set_ylabel("events/s (median; bars = min–max)")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.set_title(f"End-to-end throughput beside the floor\n({where})")
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
        written.append(_save(plt, fig, img_dir / "throughput.png"))
    return written


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """Lay ``fig`` out, write it to ``path`` and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
