"""Summaries, the Markdown table and the plots of a benchmark suite run (``bench/run.py``).

``bench/run.py`` makes them at the end of a suite.  To redraw from a saved file:
``python bench/report.py [bench/results/results.json] [--img-dir docs/img]``.
The plots need matplotlib (``pip install -e '.[bench]'``); without it they are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _paths import RESULTS
from _suite.markdown import markdown
from _suite.plots import plot
from _suite.summary import summarize_workload

DEFAULT_RESULTS = RESULTS / "results.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("results", type=Path, nargs="?", default=DEFAULT_RESULTS)
    p.add_argument("--img-dir", type=Path, default=None, help="draw the PNGs here")
    args = p.parse_args(argv)
    results = json.loads(args.results.read_text())
    for wl in results["workloads"].values():
        wl["summary"] = summarize_workload(wl["runs"])
    md = markdown(results)
    args.results.with_name("results.md").write_text(md)
    print(md)
    if args.img_dir is not None:
        for path in plot(results, args.img_dir):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
