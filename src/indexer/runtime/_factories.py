"""``ChainFactories``: which child logs of a range are indexed, and registering children.

A chain with factory children gets one; a chain without gets none, and the
processor's loop then pays nothing for the feature (one ``is None`` test
per log).  Sources deliver every log of a child contract's events that
they cannot rule out (any address, or the addresses registered when they
fetched); this decides, in chain order, which of them are children's.

The rule (docs/reference.md, "Factories"): a child's logs count from the
start of the block whose log registers it.  So the child's logs earlier in
that block count too: on a real chain those are what its constructor
emitted, before the factory's event that announced it.  ``prepare`` finds
a range's registrations by factory events before its handlers run (for
each registering block, the first); ``ctx.add_contract`` from a handler
counts from the log being handled on, as it cannot be known earlier.  The
children that such a child registers in turn by factory events (its own
logs, found only once the handler ran) count from the start of their
registering block again, but never from before the handler's log: the
processing loop is already past it (``_child_fetch``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import DecodeError
from ..handlers import Event

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..sources import DecodedLog, DecodeRoute
    from ..store import Children, ChildRow

__all__ = ["ChainFactories"]

_PARAMS = Event._fields.index("params")
_ADDRESS = Event._fields.index("address")
_NUMBER = Event._fields.index("block_number")
_LOG_INDEX = Event._fields.index("log_index")
_NEVER = float("inf")


class ChainFactories:
    """One chain's child contracts: the registered addresses and the events that register them.

    Args:
        routes: the chain's decode routes, in route-index order.
        registers: per route, the (child contract, address parameter) pairs
            its event registers (empty for most routes).
        children: the store's registrations (state, rolled back with it).
    """

    def __init__(
        self,
        chain_id: int,
        routes: Sequence[DecodeRoute],
        registers: Sequence[tuple[tuple[str, str], ...]],
        children: Children,
    ) -> None:
        self.chain_id = chain_id
        self.children = children
        # Per route: the live address map of its child contract, or None.
        self.child_of: tuple[dict[str, tuple[int, int, int]] | None, ...] = tuple(
            children.of(chain_id, r.contract) if r.child else None for r in routes
        )
        self.contract_of = tuple(r.contract for r in routes)
        self.registers = tuple(registers)
        self.names = frozenset(r.contract for r in routes if r.child) | {
            name for pairs in registers for name, _param in pairs
        }
        # Contracts with events that register children: a handler registering
        # one of these mid-range makes the rest of the range be scanned again.
        self.parents = frozenset(
            contract for contract, pairs in zip(self.contract_of, registers, strict=True) if pairs
        )
        # (contract, address) -> first block of this range that registers it.
        self.early: dict[tuple[str, str], int] = {}
        # Registrations of the range being processed, for its batch.
        self.rows: list[ChildRow] = []
        # The range's JSON-RPC fetch (BlockRange.fetched), and the children
        # registered while processing it that the fetch did not cover.
        self.fetched: Mapping[str, frozenset[str] | None] | None = None
        self.uncovered: list[tuple[str, str]] = []
        # Children whose logs this range fetched again, and whether a handler
        # registered a parent (a contract in ``parents``) since the last scan.
        self.refetched: set[tuple[str, str]] = set()
        self.rescan = False

    def begin(self, fetched: Mapping[str, frozenset[str] | None] | None) -> None:
        """Start a range whose JSON-RPC fetch covered ``fetched`` (None: a file source)."""
        self.fetched, self.uncovered, self.refetched, self.rescan = fetched, [], set(), False
        self.early, self.rows = {}, []

    def missing(self, fetched: Mapping[str, frozenset[str] | None]) -> dict[str, list[str]]:
        """Registered children a range's fetch did not ask for (registered after it was fetched)."""
        out: dict[str, list[str]] = {}
        for contract, covered in fetched.items():
            if covered is None:
                continue
            known = self.children.of(self.chain_id, contract)
            if len(known) > len(covered) or not covered.issuperset(known):
                gap = [a for a in known if a not in covered]
                if gap:
                    out[contract] = gap
        return out

    def prepare(self, items: Sequence[DecodedLog]) -> None:
        """Find the range's registrations by factory events, before its handlers run."""
        self.early = {}
        self.scan(items)

    def scan(self, items: Sequence[DecodedLog]) -> dict[tuple[str, str], int]:
        """Note the registrations by factory events among ``items`` (in chain order).

        Each registered (contract, address) counts from the first block that
        registers it.  Returns those not noted before, with that block.
        """
        early, found = self.early, {}
        registers, child_of, contract_of = self.registers, self.child_of, self.contract_of
        for route, fields, _raw in items:
            pairs = registers[route]
            if not pairs:
                continue
            known = child_of[route]
            if known is not None and not _admitted(
                known, early, contract_of[route], fields[_ADDRESS], fields[_NUMBER]
            ):
                continue
            params = fields[_PARAMS]
            if type(params) is str:
                continue  # raised by admit when the log's turn comes
            block = fields[_NUMBER]
            for contract, param in pairs:
                key = (contract, str(params[param]).lower())
                if early.get(key, _NEVER) > block:
                    early[key] = found[key] = block
        return found

    def needs_fetch(self, contract: str, address: str) -> bool:
        """Did neither the range's fetch nor a refetch ask for this child's logs?"""
        covered = None if self.fetched is None else self.fetched.get(contract)
        return (
            covered is not None
            and address not in covered
            and (contract, address) not in self.refetched
        )

    def admit(self, route: int, fields: tuple[Any, ...]) -> bool:
        """Is this log of a child contract's event a registered child's? (Others: True.)"""
        known = self.child_of[route]
        if known is None:
            return True
        if not _admitted(
            known, self.early, self.contract_of[route], fields[_ADDRESS], fields[_NUMBER]
        ):
            return False
        params = fields[_PARAMS]
        if type(params) is str:
            # The decoder could not tell whether the log was ours; it is.
            raise DecodeError(params)
        return True

    def register_from(self, route: int, fields: tuple[Any, ...], cp: int) -> None:
        """The children the admitted log ``fields`` of ``route`` registers, at checkpoint ``cp``."""
        params = fields[_PARAMS]
        for contract, param in self.registers[route]:
            self.add(contract, str(params[param]).lower(), fields[_NUMBER], fields[_LOG_INDEX], cp)

    def add(
        self,
        contract: str,
        address: str,
        block: int,
        log_index: int,
        cp: int,
        *,
        handler: bool = False,
    ) -> None:
        """Register a child; ``handler``: by ``ctx.add_contract``, which ``prepare`` cannot foresee."""
        row = (self.chain_id, contract, address, block, log_index, cp)
        if self.children.add(row):
            self.rows.append(row)
            if handler and contract in self.parents:
                self.rescan = True
            if self.needs_fetch(contract, address):
                self.uncovered.append((contract, address))

    def take_rows(self) -> list[ChildRow]:
        rows = self.rows
        self.begin(None)
        return rows


def _admitted(
    known: dict[str, tuple[int, int, int]],
    early: dict[tuple[str, str], int],
    contract: str,
    address: str,
    block: int,
) -> bool:
    return address in known or early.get((contract, address), _NEVER) <= block
