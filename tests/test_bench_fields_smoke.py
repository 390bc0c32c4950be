"""``bench/fields.py`` at tiny sizes: it runs every variant end to end and writes its report.

A benchmark is not a test: nothing here looks at a time beyond "positive".
The benchmark checks each run's tables against the chain itself (and the
block handler's last block); this checks that it did, for every variant.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

VARIANTS = ["none", "tx", "tx_receipts", "block_fields", "block_handler"]


def test_bench_fields_smoke(database_url: str, tmp_path: Path, repo_root: Path) -> None:
    results_dir = tmp_path / "results"
    out = subprocess.run(
        [
            sys.executable,
            str(repo_root / "bench" / "fields.py"),
            *("--runs", "1", "--blocks", "40", "--per-block", "3", "--warmup", "0"),
            *("--url", database_url, "--results-dir", str(results_dir)),
            *("--work-dir", str(tmp_path / "work")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    results = json.loads((results_dir / "fields.json").read_text())
    assert [r["variant"] for r in results["runs"]] == VARIANTS
    for run in results["runs"]:
        assert run["error"] is None, run
        assert run["events"] == 120
        assert run["events_per_second"] > 0
    assert list(results["summary"]) == VARIANTS
    assert "URL" in results["command"]
    assert database_url not in results["command"]
    assert "| block_handler |" in (results_dir / "fields.md").read_text()
