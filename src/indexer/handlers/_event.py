"""``Event``: one decoded log, as handlers receive it."""

from __future__ import annotations

# At run time, so that typing.get_type_hints(Event) resolves.
from collections.abc import Mapping  # noqa: TC003
from typing import Any, NamedTuple

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

    def __repr__(self) -> str:
        return (
            f"Event({self.contract}.{self.name} chain={self.chain_id} block={self.block_number} "
            f"log={self.log_index} params={dict(self.params)!r})"
        )


Event.__module__ = "indexer"
