"""Fixtures for the example's tests: the handlers module and a PostgreSQL per test session.

Copy this file next to your own tests.  ``INDEXER_TEST_DATABASE_URL`` selects a
server of your own; otherwise an embedded PostgreSQL (the same one
``indexer run`` starts) is started once per session in pytest's temporary
directory.  Each test that asks for ``schema`` gets a schema of its own,
dropped afterwards.

The async tests need pytest-trio with ``trio_mode = true`` (see pyproject.toml).
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from indexer.testing import start_embedded

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The project directory (holding indexer.yaml and handlers.py).
PROJECT = Path(__file__).resolve().parent.parent

# The tests `import handlers`, as the framework imports it: from the project directory.
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

_schemas = itertools.count()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("INDEXER_TEST_DATABASE_URL")
    return url or start_embedded(tmp_path_factory.mktemp("pg") / "pgdata")


@pytest.fixture
def schema(database_url: str) -> Iterator[str]:
    name = f"erc20_test_{os.getpid()}_{next(_schemas)}"
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
