"""The side-by-side benchmark's summary, Markdown table and plot."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from _stats import spread

if TYPE_CHECKING:
    from pathlib import Path

KINDS = ("ours", "ponder-cold", "ponder-warm", "floor-1", "floor-4")
LABELS = {
    "ours": "this project over RPC",
    "ponder-cold": "Ponder, cold (fetches over RPC)",
    "ponder-warm": "Ponder, warm (its RPC cache full)",
    "floor-1": "RPC floor, 1 request in flight",
    "floor-4": "RPC floor, 4 requests in flight",
}
# (name, numerator kind, denominator kind): wall-time ratios taken within each repetition.
RATIOS = (
    ("Ponder cold time / ours", "ponder-cold", "ours"),
    ("Ponder warm time / ours", "ponder-warm", "ours"),
    ("ours time / floor-1", "ours", "floor-1"),
    ("ours time / floor-4", "ours", "floor-4"),
)


def summarize(records: list[dict[str, Any]], events: int) -> dict[str, Any]:
    """Medians (min, max) per kind and ratios pair by pair within each repetition."""
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        walls = [r["wall_seconds"] for r in records if r["kind"] == kind and r.get("correct")]
        kinds[kind] = {
            "wall_seconds": spread(walls),
            "events_per_second": spread([events / w for w in walls if w]),
        }
    by_rep: dict[int, dict[str, float]] = {}
    for r in records:
        if r.get("correct") and r.get("wall_seconds"):
            by_rep.setdefault(r["rep"], {})[r["kind"]] = r["wall_seconds"]
    ratios = {}
    for name, num, den in RATIOS:
        values = [t[num] / t[den] for t in by_rep.values() if num in t and den in t]
        ratios[name] = spread(values)
    return {"kinds": kinds, "ratios": ratios}


def _fmt(s: dict[str, Any] | None, digits: int, unit: str = "") -> str:
    if not s:
        return "–"
    if s["n"] == 1:
        return f"{s['median']:,.{digits}f}{unit}"
    return f"{s['median']:,.{digits}f}{unit} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    params = results["params"]
    summary = results["summary"]
    lines = [
        "# Side by side over JSON-RPC: this project, Ponder, the RPC floor",
        "",
        f"`{results['command']}`, {results['date']}. {params['events']:,} ERC20 Transfers "
        f"({params['tokens']:,} token addresses listed explicitly, blocks "
        f"{params['first_block']:,}–{params['last_block']:,}), one local node "
        f"(`bench/_ponder/node.py`, at most {params['max_logs_per_query']:,} logs per "
        f"`eth_getLogs`, ranges of {params['block_range']} blocks for Ponder and the floor). "
        f"Ponder {params['ponder_version']} on Node {params['node_version']}. "
        f"Medians of {params['runs']} repetition(s) (min–max).",
        "",
        f"Machine: {machine.get('nproc')} CPUs, {machine.get('cpu_model')}, "
        f"{machine.get('ram_gib', 0):.1f} GiB; {machine.get('postgres')}; load average "
        f"{' '.join(machine.get('loadavg_at_start') or [])} at start, "
        f"{' '.join(machine.get('loadavg_at_end') or [])} at end.",
        "",
        "| | whole process, s | events/s |",
        "|---|---:|---:|",
    ]
    for kind in KINDS:
        s = summary["kinds"][kind]
        lines.append(
            f"| {LABELS[kind]} | {_fmt(s['wall_seconds'], 2)} | {_fmt(s['events_per_second'], 0)} |"
        )
    lines += ["", "Ratios of whole-process times, pair by pair within each repetition:", ""]
    lines += ["| | median (min–max) |", "|---|---:|"]
    for name, value in summary["ratios"].items():
        lines.append(f"| {name} | {_fmt(value, 2, '×')} |")
    lines += ["", "What each run asked the node for (first repetition):", ""]
    seen: set[str] = set()
    for r in results["runs"]:
        if r["kind"] in seen or "node_calls" not in r:
            continue
        seen.add(r["kind"])
        calls = r["node_calls"]
        methods = ", ".join(f"`{m}` {n:,}" for m, n in sorted(calls["methods"].items()))
        ranges = calls["getLogs_block_ranges"]
        addrs = calls["getLogs_address_counts"]
        full = calls["getBlock_full_transactions"]
        lines.append(
            f"* {LABELS[r['kind']]}: {methods or 'nothing'}; `eth_getLogs` block ranges "
            f"{_hist(ranges)}, addresses per request {_hist(addrs)}; blocks with full "
            f"transactions {full.get('true', 0):,}, headers {full.get('false', 0):,}."
        )
    if results.get("errors"):
        lines += ["", "**Errors:**", ""] + [f"* {e}" for e in results["errors"]]
    return "\n".join(lines) + "\n"


def _hist(counts: dict[str, int]) -> str:
    if not counts:
        return "–"
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{k}×{v:,}" for k, v in items[:3])
    return shown + (f" (+{len(items) - 3} more sizes)" if len(items) > 3 else "")


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """A bar per kind: median events/s, whiskers at min and max (needs matplotlib)."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[bench]')", file=sys.stderr)
        return None
    kinds = [k for k in KINDS if results["summary"]["kinds"][k]["events_per_second"]]
    stats = [results["summary"]["kinds"][k]["events_per_second"] for k in kinds]
    medians = [s["median"] for s in stats]
    errors = [[m - s["min"] for m, s in zip(medians, stats, strict=True)],
              [s["max"] - m for m, s in zip(medians, stats, strict=True)]]  # fmt: skip
    colors = {"ours": "#1f77b4", "ponder-cold": "#d62728", "ponder-warm": "#ff9896"}
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.barh(
        [LABELS[k] for k in kinds], medians, xerr=errors, capsize=4,
        color=[colors.get(k, "#7f7f7f") for k in kinds],
    )  # fmt: skip
    for y, m in enumerate(medians):
        ax.text(m, y, f"  {m:,.0f}", va="center")
    machine = results["machine"]
    params = results["params"]
    ax.set_xlabel("events per second (whole process; median, whiskers min–max)")
    ax.set_title(
        f"{params['events']:,} ERC20 Transfers over one local JSON-RPC node, "
        f"Ponder {params['ponder_version']}\n({machine.get('nproc', '?')} CPUs, "
        f"{machine.get('cpu_model', '?')}; median of {params['runs']})"
    )
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(right=max(medians) * 1.25 if medians else None)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
