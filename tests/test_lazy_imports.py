"""``indexer run`` without ``--serve`` never imports the HTTP server stack.

Hypercorn, Starlette, graphql-core and rich are about a quarter of a second
of imports.  A run pays it once in its own process and once more in every
child it spawns (the file reader, the JSON-RPC log worker), since a spawned
child runs the ``indexer`` script's imports again.  ``indexer.api`` loads its
server modules on first use for that reason (docs/design.md, module map: `api/_options.py`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

import indexer.api

from ._projects import make_project

if TYPE_CHECKING:
    from pathlib import Path

SERVER_STACK = ("hypercorn", "starlette", "graphql", "h11", "rich", "watchfiles")

_RUN = """
import json, sys
from indexer.cli import main
code = main(["run", sys.argv[1], "--no-progress"])
loaded = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps({"code": code, "loaded": loaded}))
"""


def test_a_run_without_serve_loads_no_server_module(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema)
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(project)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "INDEXER_DATABASE_URL": database_url},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert "psycopg" in result["loaded"]  # it did index: the check below means something
    assert [m for m in SERVER_STACK if m in result["loaded"]] == []


def test_every_api_name_loads_on_first_use() -> None:
    # A fresh interpreter: in this one the tests above may have loaded them all.
    check = (
        "import indexer.api as a, sys\n"
        "assert 'hypercorn' not in sys.modules\n"
        "print(sorted(n for n in a.__all__ if getattr(a, n) is None))\n"
        "print(sorted(dir(a)) == sorted(a.__all__), 'hypercorn' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "True True"]


def test_an_unknown_api_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'serve_apii'"):
        indexer.api.serve_apii  # type: ignore[attr-defined]  # noqa: B018


# What the package itself must not load: the runtime, the database driver, the metrics,
# the config's YAML. A spawned child (file reader, log worker) imports `indexer.sources`,
# and with it this package, at every start.
CHILD_NEEDS_NONE_OF = ("psycopg", "prometheus_client", "yaml", "indexer.runtime", "indexer.persist")


@pytest.mark.parametrize(
    ("module", "nor"),
    [
        # The log worker's child: not even Trio or httpx (a plain http:// node).
        ("indexer.sources._rpc_child", ("trio", "httpx", "indexer.sources._rpc_source")),
        (
            "indexer.sources._reader_child",
            ("trio", "indexer.sources._process"),
        ),  # the file reader's
    ],
)
def test_a_source_child_imports_neither_the_runtime_nor_the_database(
    module: str, nor: tuple[str, ...]
) -> None:
    unwanted = (*CHILD_NEEDS_NONE_OF, *nor)
    check = f"import sys, {module}\nprint(sorted(m for m in {unwanted!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_top_level_name_loads_on_first_use() -> None:
    check = (
        "import indexer as i, sys\n"
        "assert 'indexer.runtime' not in sys.modules and 'psycopg' not in sys.modules\n"
        "from indexer import Context, Entity, Event, Index, on\n"
        "print(sorted(n for n in i.__all__ if getattr(i, n) is None))\n"
        "print(sorted(dir(i)) == sorted(i.__all__), i.run_project.__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "True indexer.runtime._run"]


def test_an_unknown_top_level_name_is_an_attribute_error() -> None:
    import indexer

    with pytest.raises(AttributeError, match="no attribute 'run_projects'"):
        indexer.run_projects  # type: ignore[attr-defined]  # noqa: B018
