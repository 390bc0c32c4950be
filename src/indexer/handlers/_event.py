"""``Event``: one decoded log, as handlers receive it."""

from __future__ import annotations

# At run time, so that typing.get_type_hints(Event) resolves.
from collections.abc import Mapping  # noqa: TC003
from typing import Any, NamedTuple

from .._fields import Block, Transaction, make_block, make_transaction

__all__ = ["Event"]


class Event(NamedTuple):
    """One decoded log, as handlers receive it (an immutable record).

    Attributes:
        params: decoded arguments by ABI name (uintN/intN -> int, address ->
            lowercase 0x-hex str, bool, bytes/bytesN -> bytes, string -> str,
            arrays -> list, tuples -> tuple).
        contract: the contract name from indexer.yaml.
        name: the event name.
        address: emitting contract, lowercase 0x-hex.
        chain_id, block_number, log_index, transaction_hash: where the log
            comes from.
        block_hash, block_timestamp: None when the source does not have them.
        transaction: the log's transaction: the keys of ``field_selection.transaction``
            (chain and contract) as attributes.  Reading one that was not
            selected raises ``AttributeError`` naming the key to add.
        block: the log's block: ``number``, ``hash``, ``timestamp`` and the
            keys of ``field_selection.block``.
    """

    params: Mapping[str, Any]
    contract: str
    name: str
    address: str
    chain_id: int
    block_number: int
    log_index: int
    transaction_hash: str
    block_hash: str | None = None
    block_timestamp: int | None = None
    transaction: Transaction = None  # type: ignore[assignment]  # see the properties below
    block: Block = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Event({self.contract}.{self.name} chain={self.chain_id} block={self.block_number} "
            f"log={self.log_index} params={dict(self.params)!r})"
        )


_TX = Event._fields.index("transaction")
_BLOCK = Event._fields.index("block")
_get = tuple.__getitem__


def _where(event: Event, what: str) -> str:
    return f"event.{what}@of chain {event.chain_id} (or of its contract {event.contract})"


def _transaction(self: Event) -> Transaction:
    # Nothing selected: the slot holds None (decoding adds no object per
    # log), and reads get an empty Transaction whose every key is unselected.
    tx = _get(self, _TX)
    if tx is None:
        return make_transaction(_where(self, "transaction"), ())
    assert isinstance(tx, Transaction)
    return tx


def _block(self: Event) -> Block:
    block = _get(self, _BLOCK)
    if block is not None:
        assert isinstance(block, Block)
        return block
    known: list[tuple[str, object]] = [("number", self.block_number)]
    if self.block_hash is not None:
        known.append(("hash", self.block_hash))
    if self.block_timestamp is not None:
        known.append(("timestamp", self.block_timestamp))
    return make_block(_where(self, "block"), known)


# Properties in place of the NamedTuple's field getters, so that an absent
# selection reads as unselected keys rather than as None.
setattr(Event, "transaction", property(_transaction, doc="The log's transaction (see Event)."))  # noqa: B010
setattr(Event, "block", property(_block, doc="The log's block (see Event)."))  # noqa: B010
Event.__module__ = "indexer"
