"""The benchmark suite in smoke mode: it runs end to end and its results hold together.

A benchmark is not a test: nothing here looks at a time beyond "positive".  This checks
that ``bench/run.py --smoke`` (tiny sizes, one repetition) exits 0, that every workload
ran in every mode with the expected number of events, that the framework's tables equal
the floor's, that the memory runs and the reorg rollback ran, and that the report was
written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

WORKLOADS = {"erc20-balances", "erc20-unique", "uniswap-v2"}
SMOKE_EVENTS = 2_000


@pytest.mark.slow
def test_bench_smoke(database_url: str, tmp_path: Path, repo_root: Path) -> None:
    results_dir = tmp_path / "results"
    out = subprocess.run(
        [
            sys.executable,
            str(repo_root / "bench" / "run.py"),
            "--smoke",
            "--url",
            database_url,
            "--results-dir",
            str(results_dir),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    results = json.loads((results_dir / "results.json").read_text())
    assert (results_dir / "results.md").read_text().startswith("# Benchmark results")
    assert results["suite"]["smoke"] is True
    assert results["errors"] == []
    assert set(results["workloads"]) == WORKLOADS

    for name, wl in results["workloads"].items():
        assert wl["file"]["events"] == SMOKE_EVENTS, name
        kinds = {r["kind"] for r in wl["runs"]}
        assert {"background", "sync", "floor", "resume", "killed", "kill-rerun"} <= kinds, name
        for run in wl["runs"]:
            if run["kind"] == "killed":
                continue
            assert run["ok"], (name, run["kind"], run.get("error"))
            assert run["maxrss_mib"] > 0
            if run["kind"] in ("background", "sync", "floor"):
                assert run["events"] == SMOKE_EVENTS, (name, run["kind"])
                assert run["events_per_second"] > 0
            if run["kind"] != "floor":
                assert run["chain_events_total"] == SMOKE_EVENTS, (name, run["kind"])
        summary = wl["summary"]
        for kind in ("background", "sync", "floor"):
            assert summary[kind]["events_per_second"]["median"] > 0, (name, kind)
        assert summary["ratios"]["background_over_floor"]["median"] > 0
        assert summary["ratios"]["background_over_sync"]["median"] > 0
        assert summary["tables_match"] is True, name

    memory = results["memory"]
    assert [(r["expected_events"], r["target"]) for r in memory] == [
        (20_000, 1_000),
        (20_000, 10_000),
        (20_000, 100_000),
        (40_000, 10_000),
    ]
    for run in memory:
        assert run["ok"], run.get("error")
        assert run["chain_events_total"] == run["expected_events"]
        assert run["maxrss_mib"] > 0
        if sys.platform == "linux":
            assert run["rss_samples"]

    rollback = results["rollback"]
    # The smoke reorg: 8 blocks touching 200 accounts and the token rows,
    # checked by bench/rollback.py against an independent fold.
    assert rollback["seconds"] > 0
    assert rollback["rows_restored"] == 202
    assert (results_dir / "rollback.json").exists()
