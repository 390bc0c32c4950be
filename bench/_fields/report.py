"""The field-selection benchmark's summary and its Markdown table."""

from __future__ import annotations

from typing import Any

from _stats import spread

from _fields.runs import BY_NAME


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant: events/s and wall seconds (median, min, max), and the ratio to ``none``.

    The ratio is taken within each repetition (a variant's events/s over
    ``none``'s in the same repetition), then its median: the runs of one
    repetition are close in time, so a load that comes and goes moves both.
    """
    ok = [r for r in records if r.get("error") is None]
    base = {r["rep"]: r for r in ok if r["variant"] == "none"}
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["variant"] for r in records):
        mine = [r for r in ok if r["variant"] == name]
        paired = [(r, base[r["rep"]]) for r in mine if r["rep"] in base]
        out[name] = {
            "events_per_second": spread([r["events_per_second"] for r in mine]),
            "wall_seconds": spread([r["wall_seconds"] for r in mine]),
            "cpu_us_per_event": spread([r["cpu_us_per_event"] for r in mine]),
            "ratio_to_none": spread(
                [r["events_per_second"] / b["events_per_second"] for r, b in paired]
            ),
            "cpu_ratio_to_none": spread(
                [r["cpu_us_per_event"] / b["cpu_us_per_event"] for r, b in paired]
            ),
            "failed": sum(1 for r in records if r["variant"] == name and r.get("error")),
        }
    return out


def markdown(results: dict[str, Any]) -> str:
    p = results["params"]
    machine = results["machine"]
    lines = [
        f"Field selection and block handlers over RPC: {p['blocks']:,} blocks x {p['per_block']} "
        f"Transfers = {p['blocks'] * p['per_block']:,} events, {p['runs']} repetitions, "
        f"max_reorg_depth 0, the scripted chain served by a child process.",
        "",
        f"Machine: {machine.get('nproc')} cores, {machine.get('cpu_model', '?')}, "
        f"{machine.get('postgres', '?')}; load average at start {machine.get('loadavg_at_start')}, "
        f"at end {machine.get('loadavg_at_end')}. Command: `{results['command']}`.",
        "",
        "| variant | what | events/s (median) | min..max | events/s vs none | "
        "indexer CPU µs/event | CPU vs none |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in results["summary"].items():
        eps, cpu = s["events_per_second"], s["cpu_us_per_event"]
        if eps is None:
            lines.append(f"| {name} | {BY_NAME[name].what} | failed | | | | |")
            continue
        lines.append(
            f"| {name} | {BY_NAME[name].what} | {eps['median']:,.0f} | "
            f"{eps['min']:,.0f}..{eps['max']:,.0f} | {_ratio(s['ratio_to_none'])} | "
            f"{cpu['median']:.0f} | {_ratio(s['cpu_ratio_to_none'])} |"
        )
    lines += [
        "",
        "Ratios: medians of each repetition's own ratio to `none`. Indexer CPU: this "
        "process's CPU time per event (the node is a child process, PostgreSQL another).",
    ]
    if results.get("note"):
        lines += ["", results["note"]]
    return "\n".join(lines) + "\n"


def _ratio(s: dict[str, Any] | None) -> str:
    return "-" if s is None else f"{s['median']:.2f}"
