"""``Children``: the factory children registered on each chain, with the checkpoint of each."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["ChildRow", "Children"]

# (chain id, child contract name, address, block, log index, checkpoint): one
# registration, as the runtime hands it to the writer and the database returns it.
ChildRow = tuple[int, str, str, int, int, int]


class Children:
    """Every registered child, in memory: (chain, contract) -> address -> its registration.

    Registrations are state like entities, but never evicted: every log of a
    child contract's events is checked against them, and a miss must mean
    "not a child" without a query.  (100,000 children are ~15 MB.)  Rolled
    back with the entities: a registration whose checkpoint is undone is
    forgotten.
    """

    __slots__ = ("_by",)

    def __init__(self) -> None:
        self._by: dict[tuple[int, str], dict[str, tuple[int, int, int]]] = {}

    def of(self, chain_id: int, contract: str) -> dict[str, tuple[int, int, int]]:
        """The live map address -> (block, log index, checkpoint) of one child contract.

        The same dict for the life of the object (the processor keeps it for
        its hot path); callers must not change it.
        """
        return self._by.setdefault((chain_id, contract), {})

    def add(self, row: ChildRow) -> bool:
        """Register one child; False (and no change) if the address is already registered."""
        chain_id, contract, address, block, log_index, cp = row
        known = self.of(chain_id, contract)
        if address in known:
            return False
        known[address] = (block, log_index, cp)
        return True

    def load(self, rows: Iterable[ChildRow]) -> None:
        """Replace everything with ``rows`` (the database's, at start or after a lost answer)."""
        for known in self._by.values():
            known.clear()
        for row in rows:
            self.add(row)

    def rollback(self, checkpoint: int) -> None:
        """Forget every registration made above ``checkpoint``."""
        for known in self._by.values():
            undone = [a for a, (_b, _i, cp) in known.items() if cp > checkpoint]
            for address in undone:
                del known[address]

    def rows(self) -> list[ChildRow]:
        """Every registration, sorted (for tests and diagnostics)."""
        return sorted(
            (chain_id, contract, address, *reg)
            for (chain_id, contract), known in self._by.items()
            for address, reg in known.items()
        )

    def __len__(self) -> int:
        return sum(map(len, self._by.values()))
