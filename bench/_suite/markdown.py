"""The suite's results as Markdown: the tables of ``results.md``."""

from __future__ import annotations

from typing import Any

from _stats import dig


def _n(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def _s(sp: dict[str, Any] | None, digits: int = 0, spread_too: bool = True) -> str:
    if sp is None:
        return "–"
    text = _n(sp["median"], digits)
    if spread_too and sp["n"] > 1:
        text += f" ({_n(sp['min'], digits)}–{_n(sp['max'], digits)})"
    return text


def markdown(results: dict[str, Any]) -> str:
    suite = results["suite"]
    machine = results["machine"]
    lines: list[str] = []
    add = lines.append
    add("# Benchmark results")
    add("")
    add(
        f"Command: `{suite['command']}`"
        + (" (smoke mode: tiny sizes, not a measurement)" if suite.get("smoke") else "")
    )
    add("")
    add(
        f"Machine: {machine.get('cpu_model', '?')}, {machine.get('nproc', '?')} CPUs, "
        f"{_n(machine.get('ram_gib'), 1)} GiB RAM; Python {machine.get('python', '?')}; "
        f"{machine.get('postgres', '?')}; git {str(machine.get('git_commit', '?'))[:12]}"
        + (" (uncommitted changes in src/)" if machine.get("git_dirty_src") else "")
        + f"; {suite.get('started', '')}, suite wall time {_n(suite.get('wall_seconds'), 0)} s."
    )
    if suite.get("framework_source"):
        add("")
        add(f"Framework code: {suite['framework_source']}.")
    if suite.get("src_changed_during_suite"):
        add("")
        add(
            "**Warning:** the source tree under `src/` changed while the suite ran; "
            "runs may have measured different code (each run records `src_hash`)."
        )
    add("")
    runs = suite.get("runs")
    add(
        f"Throughput is events per second end to end (file source → handlers → committed in "
        f"PostgreSQL), from the framework's own summary line; median of {runs} repetitions "
        "(min–max). Ratios are taken within each repetition, then the median of the ratios. "
        "The floor is `bench/floor.py` (read + decode + fold in a dict + one COPY), timed in-process. "
        "Stalled = time the processing loop waited on the writer. Peak RSS: VmRSS summed over the "
        "process tree (the framework reads files in a child process), sampled every 0.1 s."
    )
    add("")
    add(
        "| workload | events | background events/s | sync writes events/s | floor events/s "
        "| background / floor | background / sync | stalled s (background / sync) "
        "| peak RSS MiB (background / sync / floor) |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, wl in results["workloads"].items():
        s = wl.get("summary") or {}
        add(
            f"| {name} | {_n(dig(wl, 'file', 'events'))} "
            f"| {_s(dig(s, 'background', 'events_per_second'))} "
            f"| {_s(dig(s, 'sync', 'events_per_second'))} "
            f"| {_s(dig(s, 'floor', 'events_per_second'))} "
            f"| {_s(dig(s, 'ratios', 'background_over_floor'), 2)} "
            f"| {_s(dig(s, 'ratios', 'background_over_sync'), 2)} "
            f"| {_s(dig(s, 'background', 'stalled_seconds'), 2, False)} / {_s(dig(s, 'sync', 'stalled_seconds'), 2, False)} "
            f"| {_s(dig(s, 'background', 'maxrss_mib'), 0, False)} / {_s(dig(s, 'sync', 'maxrss_mib'), 0, False)} / {_s(dig(s, 'floor', 'maxrss_mib'), 0, False)} |"
        )
    add("")
    add("Whole processes (seconds, median), restart and resume:")
    add("")
    add(
        "| workload | background process s | sync process s | floor process s "
        "| resume with nothing to do, process s | killed at ~40 %: rerun process s | rerun events (events/s) | tables equal the floor's |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, wl in results["workloads"].items():
        s = wl.get("summary") or {}
        kr = s.get("kill_rerun")
        match = s.get("tables_match")
        add(
            f"| {name} | {_s(dig(s, 'background', 'wall_seconds'), 1, False)} "
            f"| {_s(dig(s, 'sync', 'wall_seconds'), 1, False)} "
            f"| {_s(dig(s, 'floor', 'wall_seconds'), 1, False)} "
            f"| {_s(s.get('resume_noop_wall_seconds'), 2)} "
            f"| {_n(kr['wall_seconds'], 1) if kr else '–'} "
            f"| {(_n(kr['events']) + ' (' + _n(kr['events_per_second']) + ')') if kr else '–'} "
            f"| {'–' if match is None else ('yes' if match else '**NO**')} |"
        )
    mem = results.get("memory") or []
    if mem:
        add("")
        add(
            "Memory: erc20-unique, background writes, one run each; "
            "`INDEXER_TARGET_IN_MEMORY_ENTITIES` = target."
        )
        add("")
        add(
            "| events | target | peak RSS MiB (process tree) | largest process MiB (VmHWM) "
            "| events/s | stalled s | loads s | writes | process s |"
        )
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in mem:
            add(
                f"| {_n(r.get('expected_events'))} | {_n(r.get('target'))} | {_n(r.get('maxrss_mib'))} "
                f"| {_n(r.get('maxrss_largest_process_mib'))} "
                f"| {_n(r.get('events_per_second'))} | {_n(r.get('stalled_seconds'), 2)} "
                f"| {_n(r.get('load_seconds'), 1)} | {_n(r.get('writes'))} "
                f"| {_n(r.get('wall_seconds'), 1)}{'' if r.get('ok') else ' **failed**'} |"
            )
    rb = results.get("rollback") or {}
    add("")
    if rb.get("seconds") is not None:
        add(
            f"Rollback of a 64-block reorg ({_n(rb.get('rows_restored'))} rows restored), "
            f"`bench/rollback.py`: {_n(rb['seconds'], 3)} s median of {_n(rb.get('runs'))} "
            f"({_n(rb.get('min'), 3)}–{_n(rb.get('max'), 3)}); the whole second run "
            f"(start, detect, roll back, index the new blocks, flush): "
            f"{_n(rb.get('second_run_seconds'), 3)} s."
        )
    else:
        add(f"Rollback of a 64-block reorg: not measured ({rb.get('note') or 'failed'}).")
    errors = results.get("errors") or []
    if errors:
        add("")
        add("Errors:")
        add("")
        for e in errors:
            add(f"- {e}")
    add("")
    return "\n".join(lines)
