"""The indexing slowdown measured inside one run: the load on and off in alternating windows.

A pair of runs (alone, then loaded) meets the machine at two different moments, and on
these shared machines the same run's speed drifts by 2× within minutes: single pairs
ranged from −17 % to +45 % "slowdown".  Here every run serves the API, and the load
generator sends its 200 requests/s only in every other window of ``window`` seconds of
wall-clock time (``open["toggle"]`` in ``loadgen.py``).  A thread reads the run's
``indexer_events_processed_total`` from its metrics port 20 times a second, so each
window has a rate; each on-window is compared with the mean of the off-windows on
either side of it, which saw the machine within a few seconds of it.  The first
``settle`` seconds of every window are left out (requests queued at a switch drain
then), as are windows before the run's first events and after its last.
"""

from __future__ import annotations

import re
import socket
import statistics
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import workloads
from _pg import drop_schema
from _stats import dig, spread
from _suite.cli_summary import parse_summary
from _suite.projects import write_project

from _api.data import sample
from _api.indexing import TABLE, IndexingPlan, load_spec, one_run, wait_for_table
from _api.procs import Child, OpenLoop, indexer_cmd, port_of
from _api.report import targets

if TYPE_CHECKING:
    from collections.abc import Sequence

# The places the API can run during `indexer run --serve`, as extra flags.
LAYOUTS: dict[str, list[str]] = {
    "in-process": [],
    "workers": ["--workers", "1"],
    "workers-low": ["--workers", "1", "--api-priority", "low"],
}

_EVENTS = re.compile(r"^indexer_events_processed_total\{[^}]*\} ([0-9.e+]+)$", re.M)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Sampler:
    """(Unix time, events processed) of the run, read from its metrics port until stopped."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            try:
                with urllib.request.urlopen(self.url, timeout=2) as answer:
                    text = answer.read().decode()
            except OSError:
                continue  # not up yet, or gone
            self.samples.append((time.time(), sum(float(v) for v in _EVENTS.findall(text))))

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples


def window_rates(
    samples: Sequence[tuple[float, float]], epoch: float, window: float, settle: float
) -> dict[int, float]:
    """Events/s per window index (odd: load on), from the samples inside its measured part."""
    if not samples:
        return {}
    total = samples[-1][1]
    by_window: dict[int, list[tuple[float, float]]] = {}
    for t, n in samples:
        i = int((t - epoch) // window)
        if t - (epoch + i * window) >= settle and 0 < n < total:
            by_window.setdefault(i, []).append((t, n))
    rates = {}
    for i, got in by_window.items():
        (t0, n0), (t1, n1) = got[0], got[-1]
        # The counter moves once a range: a span too short for several is left out.
        if t1 - t0 >= 0.5 * (window - settle) and n1 > n0:
            rates[i] = (n1 - n0) / (t1 - t0)
    return rates


def on_off_ratios(rates: dict[int, float]) -> list[float]:
    """Each on-window's rate over the mean of its two neighbouring off-windows'."""
    return [
        r / ((rates[i - 1] + rates[i + 1]) / 2)
        for i, r in sorted(rates.items())
        if i % 2 == 1 and i - 1 in rates and i + 1 in rates
    ]


def toggle_run(
    plan: IndexingPlan,
    wf: workloads.WorkloadFile,
    layout: list[str],
    name: str,
    sampled: tuple[list[str], list[str]],
    window: float,
    settle: float,
) -> dict[str, Any]:
    """One run serving the API with the load toggled; its windows' rates and ratios."""
    schema = f"{plan.tag}_{name}"
    drop_schema(plan.url, schema, checkpoint=True)
    project = write_project(plan.work_dir, wf, schema)
    metrics = _free_port()
    args = ["run", str(project), "--no-progress", "--reset", "--serve", "--port", "0"]
    args += [*layout, "--metrics-port", str(metrics)]
    epoch = time.time()
    spec = load_spec(plan, sampled)
    spec["open"]["toggle"] = {"epoch": epoch, "seconds": window}
    record: dict[str, Any] = {"name": name, "schema": schema, "window": window, "settle": settle}
    record["command"] = "indexer " + " ".join(a if a != str(project) else "<project>" for a in args)
    gen = OpenLoop(spec, plan.work_dir / "api" / "load", plan.env, f"{schema}-load")
    child = Child(indexer_cmd(*args), plan.env, plan.work_dir / "logs" / schema)
    sampler = _Sampler(metrics)
    try:
        base = child.wait_for(r"serving the API on (http://[^ ,]+)", timeout=120).group(1)
        wait_for_table(plan.url, schema, child)
        gen.go(port_of(base), child.proc.pid)
        child.wait_for(r"^(done|stopped): [\d,]+ events", timeout=3600)
        samples = sampler.stop()
        assert gen.started is not None
        # Smoke runs index in a blink: keep the load on long enough for on-windows.
        time.sleep(max(0.0, plan.min_load_seconds - (time.perf_counter() - gen.started)))
        record["load"] = gen.stop()
        record["returncode"] = child.stop()
    except RuntimeError as exc:
        sampler.stop()
        gen.child.stop()
        record["returncode"] = child.stop()
        record["error"] = str(exc)
        samples = []
    finally:
        drop_schema(plan.url, schema)
    record.update(parse_summary(child.stdout))
    rates = window_rates(samples, epoch, window, settle)
    record["rates"] = {str(i): r for i, r in sorted(rates.items())}
    record["ratios"] = on_off_ratios(rates)
    record["samples"] = len(samples)
    load = record.get("load") or {}
    if "error" not in record and (record["returncode"] != 0 or record.get("events") != wf.events):
        record["error"] = f"exit {record['returncode']}, {record.get('events')} events"
    if "error" not in record and (load.get("errors") or not load.get("requests")):
        record["error"] = f"load: {load.get('errors')} errors, {load.get('requests')} answers"
    if "error" in record:
        plan.errors.append(f"toggle {name}: {record['error']}; stderr: {child.stderr_tail()}")
    return record


def run_toggle(
    plan: IndexingPlan, layouts: dict[str, list[str]], window: float, settle: float
) -> dict[str, Any]:
    """One alone run to sample ids, then ``plan.runs`` toggled runs per layout, rotating."""
    wf = workloads.generate("erc20-balances", plan.events, plan.work_dir)
    first = one_run(plan, wf, "alone", 0, None)
    if not first["ok"]:
        drop_schema(plan.url, first["schema"])
        return {"file": wf.to_json(), "runs": [], "window": window, "settle": settle}
    sampled = sample(plan.url, first["schema"], TABLE, 5_000, seed=1)
    drop_schema(plan.url, first["schema"])
    records = []
    names = list(layouts)
    for rep in range(1, plan.runs + 1):
        k = (rep - 1) % len(names)
        for layout in names[k:] + names[:k]:
            record = toggle_run(
                plan,
                wf,
                layouts[layout],
                f"{layout.replace('-', '_')}_{rep}",
                sampled,
                window,
                settle,
            )
            record.update(layout=layout, rep=rep)
            records.append(record)
            ratios = record["ratios"]
            plan.log(
                f"  {layout} rep {rep}: {len(ratios)} on-windows, ratio median "
                + (f"{statistics.median(ratios):.3f}" if ratios else "–")
                + (f"  FAILED: {record['error']}" if "error" in record else "")
            )
    return {"file": wf.to_json(), "runs": records, "window": window, "settle": settle}


def summarize(toggle: dict[str, Any]) -> dict[str, Any]:
    """Per layout: every on-window's ratio pooled, and each run's median."""
    out: dict[str, Any] = {}
    for layout in dict.fromkeys(r["layout"] for r in toggle["runs"]):
        mine = [r for r in toggle["runs"] if r["layout"] == layout and "error" not in r]
        pooled = [x for r in mine for x in r["ratios"]]
        per_run = [statistics.median(r["ratios"]) for r in mine if r["ratios"]]
        loads = [r["load"] for r in mine]
        kind = "by_id" if any("by_id" in (ld.get("kinds") or {}) for ld in loads) else "health"
        p50 = [dig(ld, "kinds", kind, "latency_ms", "p50") for ld in loads]
        p99 = [dig(ld, "kinds", kind, "latency_ms", "p99") for ld in loads]
        out[layout] = {
            "runs": len(mine),
            "on_windows": len(pooled),
            "slowdown_pooled": 1 - statistics.median(pooled) if pooled else None,
            "slowdown_per_run": spread([1 - x for x in per_run]),
            "dropped": sum(int(ld.get("dropped") or 0) for ld in loads),
            "by_id_p50_ms": spread([v for v in p50 if v is not None]),
            "by_id_p99_ms": spread([v for v in p99 if v is not None]),
        }
    return out


def markdown(results: dict[str, Any]) -> str:
    """The toggle table, for ``api_toggle.md``."""
    toggle, summary = results["toggle"], results["toggle_summary"]
    window, settle = toggle["window"], toggle["settle"]
    health = results["settings"].get("load") == "health"
    what = "`GET /health`: the HTTP server alone" if health else "by-id and page queries"
    lines = [
        "# The indexing slowdown, load toggled within each run",
        "",
        f"Command: `{results['command']}`; started {results['started']}.",
        "",
        f"Machine: {results['machine'].get('cpu_model', '?')}, "
        f"{results['machine'].get('nproc', '?')} CPUs; {results['machine'].get('postgres', '?')}.",
        "",
        f"Each run: `indexer run` of the {toggle['file']['events']:,}-event erc20-balances file "
        f"serving the API, the load ({results['settings']['rate']:g} requests/s of {what}) on "
        f"in every other {window:g}-second window; events/s per window from the "
        f"run's metrics (the first {settle:g} s of each left out); each on-window against the "
        "mean of the off-windows either side. Slowdown = 1 − that ratio: the median over all "
        "on-windows of the layout's runs (pooled), and the spread of the runs' own medians.",
        "",
        "| layout | runs | on-windows | slowdown, pooled | slowdown per run, median (min–max) "
        f"| dropped | {'/health' if health else 'by-id'} p50 / p99 ms (median of runs) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for layout, s in summary.items():
        per = s["slowdown_per_run"]
        per_txt = "–" if per is None else f"{per['median']:.1%} ({per['min']:.1%}–{per['max']:.1%})"
        pooled = "–" if s["slowdown_pooled"] is None else f"**{s['slowdown_pooled']:.1%}**"
        p50, p99 = s["by_id_p50_ms"], s["by_id_p99_ms"]
        lat = "–" if p50 is None or p99 is None else f"{p50['median']:,.1f} / {p99['median']:,.1f}"
        lines.append(
            f"| `{' '.join(['--serve', *LAYOUTS[layout]])}` | {s['runs']} | {s['on_windows']} "
            f"| {pooled} | {per_txt} | {s['dropped']:,} | {lat} |"
        )
    if not health:
        lines += ["", "| target | layout | measured | met |", "|---|---|---:|---|"]
        # The same judgement as api.md's (report.targets), one row per layout.
        judged = targets([], None, summary, results["settings"]["rate"])
        for layout, t in zip(
            (k for k, s in summary.items() if s["slowdown_pooled"] is not None), judged, strict=True
        ):
            lines.append(
                f"| {t['target']} | `{' '.join(['--serve', *LAYOUTS[layout]])}` "
                f"| {t['value']:.1%} | {'yes' if t['met'] else '**no**'} |"
            )
    if results.get("errors"):
        lines += ["", "Errors:", "", *[f"* {e}" for e in results["errors"]]]
    return "\n".join(lines) + "\n"
