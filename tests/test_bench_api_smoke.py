"""The API benchmark in smoke mode: it runs end to end and every scenario was answered correctly.

A benchmark is not a test: nothing here looks at a time beyond "positive".  This checks
that ``bench/api.py --smoke`` (tiny sizes, one repetition) exits 0, that every query ran
at every client count with answers and no errors (the load generator checks the answers
it parses: the id asked for, pages ordered and of the token asked), that the indexing
pair ran with the API loaded, and that the report was written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

CLIENTS = [1, 16, 64]


def _bench(repo_root: Path, script: str, *args: str) -> None:
    """Run ``bench/<script>`` with ``args``; it must exit 0."""
    out = subprocess.run(
        [sys.executable, str(repo_root / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


def _into(database_url: str, schema: str, work: Path, results_dir: Path) -> tuple[str, ...]:
    """The flags that point a benchmark at the test database and this test's directories."""
    return (
        "--url",
        database_url,
        "--schema",
        schema,
        "--work-dir",
        str(work),
        "--results-dir",
        str(results_dir),
    )


@pytest.mark.slow
def test_bench_api_smoke(database_url: str, schema: str, tmp_path: Path, repo_root: Path) -> None:
    results_dir = tmp_path / "results"
    _bench(
        repo_root,
        "api.py",
        "--smoke",
        *_into(database_url, schema, tmp_path / "work", results_dir),
    )
    results = json.loads((results_dir / "api.json").read_text())
    assert (results_dir / "api.md").read_text().startswith("# API benchmark")
    assert results["smoke"] is True
    assert results["errors"] == []
    assert results["data"]["rows"] == 5_000

    ran = {(r["kind"], r["clients"]) for r in results["scenarios"]}
    assert ran == {(kind, c) for kind in ("by_id", "page") for c in CLIENTS}
    for r in results["scenarios"]:
        assert r["requests"] > 0, r["name"]
        assert r["errors"] == 0, (r["name"], r["error_samples"])
        assert r["verified"] > 0, r["name"]  # smoke parses and checks every answer
        assert r["requests_per_second"] > 0
        assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
    assert len(results["scenario_summary"]) == len(ran)

    runs = results["indexing"]["runs"]
    assert sorted(r["variant"] for r in runs) == ["alone", "loaded"]
    for run in runs:
        assert run["ok"], run.get("error")
        assert run["events"] == results["indexing"]["file"]["events"]
    assert results["indexing"]["tables_equal"] is True
    (loaded,) = (r["load"] for r in runs if r["variant"] == "loaded")
    assert loaded["errors"] == 0
    for kind in ("by_id", "page"):
        assert loaded["kinds"][kind]["requests"] > 0, kind
        assert loaded["kinds"][kind]["verified"] > 0, kind
    summary = results["indexing_summary"]
    assert summary["loaded_over_alone"]["n"] == 1
    assert {t["target"].split()[0] for t in results["targets"]} == {"≥", "p99", "indexing"}


@pytest.mark.slow
def test_bench_api_layouts_smoke_low_priority(
    database_url: str, schema: str, tmp_path: Path, repo_root: Path
) -> None:
    """One pair of ``api_layouts.py``: the run under load with its API at low priority."""
    results_dir, work = tmp_path / "results", tmp_path / "work"
    _bench(
        repo_root,
        "api_layouts.py",
        "--smoke",
        "--rounds",
        "1",
        "--layouts",
        "workers-low",
        *_into(database_url, schema, work, results_dir),
    )
    results = json.loads((results_dir / "api_layouts.json").read_text())
    (pair,) = results["pairs"]
    assert pair["layout"] == "workers-low"
    assert pair["summary"]["errors"] == 0
    assert pair["summary"]["requests"] > 0
    assert results["summary"]["workers-low"]["pairs"] == 1
    assert "| `workers-low` | 1 |" in (results_dir / "api_layouts.md").read_text()
    runs = json.loads((work / "api" / "layouts" / "workers-low-1" / "api.json").read_text())
    loaded = [r for r in runs["indexing"]["runs"] if r["variant"] == "loaded"]
    assert [r["command"].endswith("--workers 1 --api-priority low") for r in loaded] == [True]
    assert all(r["ok"] for r in runs["indexing"]["runs"])


@pytest.mark.slow
def test_bench_api_server_cost_smoke(tmp_path: Path, repo_root: Path) -> None:
    """Each server stack of ``api_server_cost.py`` answers every request it is sent."""
    _bench(
        repo_root,
        "api_server_cost.py",
        "--runs",
        "1",
        "--seconds",
        "1",
        "--rate",
        "50",
        "--results-dir",
        str(tmp_path),
    )
    results = json.loads((tmp_path / "api_server_cost.json").read_text())
    runs = results["runs"]
    assert sorted(r["stack"] for r in runs) == [
        "hypercorn",
        "hypercorn+starlette",
        "lean+starlette",
        "socket",
    ]
    for r in runs:
        assert r["asked"] > 0
        assert r["requests"] == r["asked"], r
    assert (tmp_path / "api_server_cost.md").read_text().startswith("# What one HTTP request")


@pytest.mark.slow
def test_bench_api_toggle_smoke(
    database_url: str, schema: str, tmp_path: Path, repo_root: Path
) -> None:
    """``api.py --toggle``: every layout indexes while serving the toggled load, and is read."""
    results_dir, work = tmp_path / "results", tmp_path / "work"
    _bench(
        repo_root,
        "api.py",
        "--smoke",
        "--toggle",
        "0.2",
        *_into(database_url, schema, work, results_dir),
    )
    results = json.loads((results_dir / "api_toggle.json").read_text())
    runs = results["toggle"]["runs"]
    assert sorted(r["layout"] for r in runs) == ["in-process", "workers", "workers-low"]
    for r in runs:
        assert "error" not in r, r.get("error")
        assert r["events"] == results["toggle"]["file"]["events"]
        assert r["samples"] > 0  # the run's metrics port was read
        assert r["load"]["requests"] > 0
        assert r["load"]["errors"] == 0
        assert all(rate > 0 for rate in r["rates"].values())
    assert "--api-priority low" in (results_dir / "api_toggle.md").read_text()
