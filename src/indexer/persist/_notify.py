"""Commit and rollback notifications: ``pg_notify`` inside the transaction they announce.

PostgreSQL delivers a notification only when its transaction commits, and
in commit order, so a listener (the HTTP API's ``/events`` stream) hears of
exactly the commits and rollbacks that happened, after the data is visible,
from any process on the same database.  One channel serves every project
schema; the payload names the schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import sql

__all__ = ["CHANNEL", "Notification", "decode_notification", "notify"]

CHANNEL = "indexer_events"


@dataclass(frozen=True, slots=True)
class Notification:
    """A commit (``kind == "commit"``) or a rollback (``"reorg"``) of one schema."""

    schema: str
    kind: str
    blocks: dict[int, int]  # chain id -> its block after the transaction


def notify(cur: Any, schema: str, kind: str, blocks: dict[int, int]) -> None:
    payload = json.dumps({"schema": schema, "kind": kind, "blocks": blocks})
    cur.execute(sql.SQL("SELECT pg_notify(%s, %s)"), (CHANNEL, payload))


def decode_notification(payload: str) -> Notification | None:
    """The notification in ``payload``, or None if it is not one of ours."""
    try:
        data = json.loads(payload)
        return Notification(
            str(data["schema"]),
            str(data["kind"]),
            {int(c): int(b) for c, b in data["blocks"].items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
