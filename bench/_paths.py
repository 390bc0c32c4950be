"""Where things are: the repository, bench/, its projects and its results."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PROJECTS = BENCH / "projects"
RESULTS = BENCH / "results"
# Generated workload files, projects, logs and the embedded server (gitignored).
WORK = BENCH / ".work"
