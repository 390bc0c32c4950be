"""``/status`` and ``/ready``: each chain's committed block against its target.

Read from the database (``_indexer_chains``), not from a running process, so
that every ``indexer serve`` beside the indexer answers the same.  A chain
is *ready* once it has committed its ``end_block``, or, following a chain
without one, the head its source reported at its latest commit.  A chain
read from a file without ``end_block`` has no known head: it is ready once
it has committed anything (the indexer reads a file through to its end in
one run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..persist import ChainRow

__all__ = ["ChainTarget", "readiness", "status_body"]


@dataclass(frozen=True, slots=True)
class ChainTarget:
    """A configured chain: where it starts and where (if anywhere) it ends."""

    chain_id: int
    start_block: int
    end_block: int | None
    follows_head: bool  # an RPC source: its head is reported at each commit


def _chain(target: ChainTarget, row: ChainRow | None) -> dict[str, Any]:
    committed = row.block if row is not None else None
    head = row.head_block if row is not None else None
    if committed is None:
        ready, why = False, "nothing committed yet"
    elif target.end_block is not None:
        ready = committed >= target.end_block
        why = f"committed block {committed} of end_block {target.end_block}"
    elif head is not None:
        ready = committed >= head
        why = f"committed block {committed}, head {head}"
    elif target.follows_head:
        ready, why = False, f"committed block {committed}, head not known yet"
    else:
        ready, why = True, f"committed block {committed}"
    return {
        "chain_id": target.chain_id,
        "start_block": target.start_block,
        "end_block": target.end_block,
        "committed_block": committed,
        "head_block": head,
        "events_processed": row.events if row is not None else 0,
        "ready": ready,
        "detail": why,
    }


def status_body(
    targets: Sequence[ChainTarget], rows: dict[int, ChainRow] | None
) -> list[dict[str, Any]]:
    """One JSON object per configured chain, in configuration order."""
    rows = rows or {}
    return [_chain(t, rows.get(t.chain_id)) for t in targets]


def readiness(chains: list[dict[str, Any]]) -> tuple[bool, list[dict[str, Any]]]:
    """(every chain ready, the chains that are not, with why)."""
    waiting = [{"chain_id": c["chain_id"], "reason": c["detail"]} for c in chains if not c["ready"]]
    return not waiting, waiting
