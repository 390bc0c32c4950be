"""pytest plugin loaded into every mutant's pytest run (``-p tools.mutate._probe``).

It fails the run at once (a usage error, exit status 4) unless the module
the mutant changed is imported from the mutated copy, not from the
editable install of the working tree: a mutant that is not really
imported would "survive" for nothing.  It also turns off Hypothesis's
shrinking: a mutant only needs a failing example, not the smallest one,
and shrinking a state machine that talks to PostgreSQL can take minutes.
And it derandomizes Hypothesis: every run of a mutant draws the same
examples, so a catch (or a miss) is the same in every run, never luck.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import Phase, settings

SRC_VARIABLE = "INDEXER_MUTATE_SRC"
MODULE_VARIABLE = "INDEXER_MUTATE_MODULE"


def pytest_configure(config: pytest.Config) -> None:
    src, module = os.environ.get(SRC_VARIABLE), os.environ.get(MODULE_VARIABLE)
    if not src or not module:
        raise pytest.UsageError(f"tools.mutate probe: {SRC_VARIABLE} and {MODULE_VARIABLE} unset")
    spec = importlib.util.find_spec(module)
    origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
    if origin is None or not origin.is_relative_to(Path(src).resolve()):
        raise pytest.UsageError(
            f"tools.mutate probe: {module} is imported from {origin}, not from the mutated copy "
            f"in {src}; is PYTHONPATH overridden?"
        )
    settings.register_profile(
        "mutate",
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        print_blob=False,
        derandomize=True,
    )
    settings.load_profile("mutate")
