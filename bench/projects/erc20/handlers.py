"""The example's handlers (``examples/erc20/handlers.py``), minus its end-of-run report.

The benchmark runs exactly the example's ``Account`` entity and ``transfer`` handler.
It leaves out ``report()``: that query runs after the timed part but inside the
process, and would count against the process wall time and the resume time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "erc20" / "handlers.py"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("bench_erc20_example_handlers", _EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_example = _load()
Account = _example.Account
transfer = _example.transfer
