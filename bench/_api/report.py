"""The API benchmark's summary (medians over the repetitions), the targets, and the Markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from _stats import dig, spread

if TYPE_CHECKING:
    from collections.abc import Sequence

LATENCIES = ("p50", "p90", "p99", "max")
KIND_LABEL = {"by_id": "by id", "page": "filtered page + totalCount"}
TARGET_BY_ID_RPS = 2_000
TARGET_PAGE_P99_MS = 50.0
TARGET_PAGE_P99_CLIENTS = 16
TARGET_SLOWDOWN = 0.15


def _values(records: Sequence[dict[str, Any]], *path: str) -> list[float]:
    return [float(v) for r in records if (v := dig(r, *path)) is not None]


def summarize_scenarios(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (query, clients): the per-run figures' median, min and max."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["kind"], r["clients"]), []).append(r)
    out = []
    for (kind, clients), rs in sorted(groups.items()):
        out.append(
            {
                "kind": kind,
                "clients": clients,
                "runs": len(rs),
                "requests": sum(r["requests"] for r in rs),
                "errors": sum(r["errors"] for r in rs),
                "verified": sum(r["verified"] for r in rs),
                "reconnects": sum(r["reconnects"] for r in rs),
                "requests_per_second": spread(_values(rs, "requests_per_second")),
                **{f"{q}_ms": spread(_values(rs, "latency_ms", q)) for q in LATENCIES},
                "server_cpu_percent": spread(_values(rs, "cpu", "server_percent_of_a_core")),
                "generator_cpu_percent": spread(_values(rs, "cpu", "generator_percent_of_a_core")),
                "machine_busy_percent": spread(_values(rs, "cpu", "machine_busy_percent")),
            }
        )
    return out


def summarize_indexing(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Events/s alone and loaded, the per-pair ratio, and the load as it was served."""
    ok = [r for r in runs if r.get("ok")]
    by_rep: dict[int, dict[str, float]] = {}
    for r in ok:
        by_rep.setdefault(r["rep"], {})[r["variant"]] = r["events_per_second"]
    ratios = [p["loaded"] / p["alone"] for p in by_rep.values() if len(p) == 2 and p["alone"]]
    loaded = [r for r in ok if r["variant"] == "loaded"]
    kinds: dict[str, Any] = {}
    for kind in ("by_id", "page", "health"):
        if not _values(loaded, "load", "kinds", kind, "latency_ms", "p50"):
            continue
        kinds[kind] = {
            f"{q}_ms": spread(_values(loaded, "load", "kinds", kind, "latency_ms", q))
            for q in ("p50", "p99", "max")
        }
    return {
        "alone_events_per_second": spread(
            [r["events_per_second"] for r in ok if r["variant"] == "alone"]
        ),
        "loaded_events_per_second": spread([r["events_per_second"] for r in loaded]),
        # The whole process (with its reaped children): loaded runs also serve, and stop.
        "alone_cpu_seconds": spread(
            [r["cpu_seconds"] for r in ok if r["variant"] == "alone" and r.get("cpu_seconds")]
        ),
        "loaded_cpu_seconds": spread([r["cpu_seconds"] for r in loaded if r.get("cpu_seconds")]),
        "loaded_over_alone": spread(ratios),
        "slowdown": spread([1 - x for x in ratios]),
        "requests_per_second": spread(_values(loaded, "load", "requests_per_second")),
        "rate_asked": dig(loaded[0], "load", "rate_asked") if loaded else None,
        "load": loaded[0].get("load_asked", "graphql") if loaded else "graphql",
        "load_seconds": spread(_values(loaded, "load", "seconds")),
        "requests": sum(int(dig(r, "load", "requests") or 0) for r in loaded),
        "dropped": sum(int(dig(r, "load", "dropped") or 0) for r in loaded),
        "max_backlog": dig(loaded[0], "load", "max_backlog") if loaded else None,
        "errors": sum(int(dig(r, "load", "errors") or 0) for r in loaded),
        "kinds": kinds,
        "server_cpu_percent": spread(_values(loaded, "load", "cpu", "server_percent_of_a_core")),
        "machine_busy_percent": spread(_values(loaded, "load", "cpu", "machine_busy_percent")),
    }


def targets(
    scenarios: Sequence[dict[str, Any]],
    indexing: dict[str, Any] | None,
    toggle: dict[str, Any] | None = None,
    rate: float = 200.0,
) -> list[dict[str, Any]]:
    """The issue's three targets, each with the figure it is judged on and whether it is met."""
    out: list[dict[str, Any]] = []
    by_id = [s for s in scenarios if s["kind"] == "by_id" and s["requests_per_second"]]
    if by_id:
        best = max(by_id, key=lambda s: s["requests_per_second"]["median"])
        rps = best["requests_per_second"]["median"]
        out.append(
            {
                "target": f"≥ {TARGET_BY_ID_RPS:,} by-id requests/s",
                "value": rps,
                "where": f"{best['clients']} clients (best of the client counts)",
                "met": rps >= TARGET_BY_ID_RPS,
            }
        )
    page = [
        s
        for s in scenarios
        if s["kind"] == "page" and s["clients"] == TARGET_PAGE_P99_CLIENTS and s["p99_ms"]
    ]
    if page:
        p99 = page[0]["p99_ms"]["median"]
        out.append(
            {
                "target": f"p99 ≤ {TARGET_PAGE_P99_MS:g} ms, filtered page, {TARGET_PAGE_P99_CLIENTS} clients",
                "value": p99,
                "where": "median over the repetitions of each run's p99",
                "met": p99 <= TARGET_PAGE_P99_MS,
            }
        )
    if indexing and indexing.get("slowdown") and indexing.get("load", "graphql") == "graphql":
        slow = indexing["slowdown"]["median"]
        out.append(
            {
                "target": f"indexing slowed ≤ {TARGET_SLOWDOWN:.0%} under {indexing.get('rate_asked'):g} requests/s",
                "value": slow,
                "where": "median over the pairs of 1 − loaded/alone events/s",
                "met": slow <= TARGET_SLOWDOWN,
            }
        )
    for layout, s in (toggle or {}).items():
        if s["slowdown_pooled"] is not None:
            out.append(
                {
                    "target": f"indexing slowed ≤ {TARGET_SLOWDOWN:.0%} under {rate:g} requests/s",
                    "value": s["slowdown_pooled"],
                    "where": f"`{layout}`: within runs, median over {s['on_windows']} "
                    "on-windows of on/off events/s",
                    "met": s["slowdown_pooled"] <= TARGET_SLOWDOWN,
                }
            )
    return out


def _latency(ix: dict[str, Any], kind: str) -> str:
    got = ix["kinds"].get(kind)
    if got is None:
        return "–"
    return f"{_s(got['p50_ms'], '{:.1f}', False)} / {_s(got['p99_ms'], '{:.1f}', False)}"


def _s(v: dict[str, Any] | None, fmt: str = "{:,.0f}", ranged: bool = True) -> str:
    if not v:
        return "–"
    text = fmt.format(v["median"])
    if ranged and v["n"] > 1:
        text += f" ({fmt.format(v['min'])}–{fmt.format(v['max'])})"
    return text


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    data = results.get("data") or {}
    lines = [
        "# API benchmark",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {m.get('cpu_model', '?')}, {m.get('nproc')} CPUs, {m.get('ram_gib', 0):.1f} GiB RAM;"
        f" Python {m.get('python')}; {m.get('postgres')}; git {str(m.get('git_commit'))[:12]}"
        f"{' (src modified)' if m.get('git_dirty_src') else ''}; load average at start"
        f" {' '.join(m.get('loadavg_at_start') or [])}, at end {' '.join(m.get('loadavg_at_end') or [])}.",
        "",
        f"Data: `{data.get('rows', 0):,}` rows of `holding` over {data.get('tokens', 0):,} tokens"
        f" (balance > 0 per token: max {dig(data, 'positive_balances_per_token', 'max') or 0:,},"
        f" median {dig(data, 'positive_balances_per_token', 'median') or 0:,}),"
        f" {data.get('table_bytes', 0) / 2**20:,.0f} MiB with indexes.",
        "",
        "Closed loop: each client on its own keep-alive connection sends its next request as"
        " soon as the answer is in. Median over the repetitions of each run's figure (min–max);"
        f" {results['settings']['seconds']:g} s measured after {results['settings']['warmup']:g} s of warm-up."
        " CPU: % of one core (server = the `indexer serve` processes; PostgreSQL is not in it);"
        " machine busy = % of all cores.",
        "",
        "| query | clients | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU % | generator CPU % | machine busy % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if not results.get("scenario_summary"):
        lines[-5:] = ["Closed loop: not run (`--skip-closed`)."]
    for s in results.get("scenario_summary") or []:
        lat = [_s(s[f"{q}_ms"], "{:.1f}") for q in LATENCIES]
        lines.append(
            f"| {KIND_LABEL[s['kind']]} | {s['clients']} | {_s(s['requests_per_second'])} | "
            + " | ".join(lat)
            + f" | {s['errors']} | {_s(s['server_cpu_percent'], ranged=False)}"
            f" | {_s(s['generator_cpu_percent'], ranged=False)} | {_s(s['machine_busy_percent'], ranged=False)} |"
        )
    ix = results.get("indexing_summary")
    health = ix is not None and ix.get("load") == "health"
    if ix:
        f = results["indexing"]["file"]
        lines += [
            "",
            f"While indexing: `{f['workload']}`, {f['events']:,} events, alone vs with"
            f" `{_serve_flags(results)}` under an open-loop load of {ix['rate_asked']:g} requests/s (by-id and"
            " page queries alternating, on the `account` table being written; latency from the"
            " time each request was due)."
            + (
                " **This run's load was `GET /health`** (`--load health`: the HTTP server's"
                " own cost, no query), so the by-id column shows its latency and the slowdown is"
                " not judged against the target."
                if health
                else ""
            )
            + " Pairs in alternating order; slowdown = 1 − loaded/alone"
            " within each pair, median (min–max).",
            "",
            "| events/s alone | events/s with the API loaded | slowdown | requests/s answered |"
            " by-id p50 / p99 ms | page p50 / p99 ms | errors | dropped | process CPU s alone / loaded |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {_s(ix['alone_events_per_second'])} | {_s(ix['loaded_events_per_second'])} |"
            f" {_s(ix['slowdown'], '{:.1%}')} | {_s(ix['requests_per_second'])} |"
            f" {_latency(ix, 'health' if health else 'by_id')} | {_latency(ix, 'page')} |"
            f" {ix['errors']} | {ix['dropped']} |"
            f" {_s(ix['alone_cpu_seconds'], '{:.1f}', False)} / {_s(ix['loaded_cpu_seconds'], '{:.1f}', False)} |",
        ]
    if ix and ix["dropped"]:
        lines += [
            "",
            f"The server did not keep up with {ix['rate_asked']:g} requests/s while indexing:"
            f" the generator dropped {ix['dropped']:,} requests (it keeps at most"
            f" {ix['max_backlog'] or 0:,} waiting), so the slowdown above is at the rate answered,"
            " and the latencies include the wait in that queue.",
        ]
    if results.get("targets"):
        lines += ["", "| target | measured | | met |", "|---|---:|---|---|"]
        for t in results["targets"]:
            value = (
                f"{t['value']:.1%}"
                if "slowed" in t["target"]
                else (f"{t['value']:.1f} ms" if "ms" in t["target"] else f"{t['value']:,.0f}/s")
            )
            lines.append(
                f"| {t['target']} | {value} | {t['where']} | {'yes' if t['met'] else '**no**'} |"
            )
    if results.get("errors"):
        lines += ["", "Errors:", "", *[f"* {e}" for e in results["errors"]]]
    return "\n".join(lines) + "\n"


def _serve_flags(results: dict[str, Any]) -> str:
    settings = results["settings"]
    workers = settings.get("serve_workers")
    if workers is None:
        return "--serve"
    low = " --api-priority low" if settings.get("api_priority", "normal") == "low" else ""
    return f"--serve --workers {workers}{low}"
