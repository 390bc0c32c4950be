"""A batch: processed work the writer has not committed yet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..persist import ChainProgress, CheckpointRow
    from ..store import ChildRow

__all__ = ["Batch"]


@dataclass(slots=True)
class Batch:
    """Checkpoints ``(previous batch's upto, upto]``: their chain progress and rows.

    A batch carries no entity rows: those stay in the store until the
    writer snapshots it at ``upto`` (see :class:`~indexer.persist.Changeset`).
    """

    upto: int
    chains: dict[int, ChainProgress]
    checkpoints: list[CheckpointRow] = field(default_factory=list)
    # Within some chain's reorg window: write history (see Changeset.history).
    history: bool = False
    # chain id -> highest final block (see Changeset.prune); newest wins.
    prune: dict[int, int] = field(default_factory=dict)
    raw: list[tuple[Any, ...]] = field(default_factory=list)
    # Factory children registered in these checkpoints.
    children: list[ChildRow] = field(default_factory=list)

    def merge(self, later: Batch) -> Batch:
        """One batch covering this one and ``later`` (which follows it)."""
        assert later.upto >= self.upto
        chains = dict(self.chains)
        chains.update(later.chains)
        # A merged write with history anywhere writes history for all of it:
        # extra before-images are harmless, a missing one is not.
        return Batch(
            later.upto,
            chains,
            self.checkpoints + later.checkpoints,
            self.history or later.history,
            {**self.prune, **later.prune},
            self.raw + later.raw if later.raw else self.raw,
            self.children + later.children if later.children else self.children,
        )
