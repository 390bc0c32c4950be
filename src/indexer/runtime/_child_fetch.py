"""Fetching the logs of children registered after their range was fetched.

A JSON-RPC range is fetched with the children known then (by address, below
the source's ``child_address_limit``).  Two kinds of registration come too
late for that fetch, and their children's logs are fetched again before the
range's handlers reach them:

* children registered by an earlier range that was processed after this one
  was fetched (``fetch_missing``, before the range's handlers run);
* children registered by a handler (``ctx.add_contract``) while the range is
  processed (``fetch_rest``, right after that handler).

Either may register grandchildren by factory events in the logs fetched
again, and those count from the start of their registering block (the
rule of docs/reference.md, "Factories"): so each wave of refetched logs is
scanned for registrations, and the grandchildren the fetch did not cover
are fetched in turn from their registering block, until a wave registers
nothing new.  A handler's registration can never reach back before the
handler's own log: those logs have been processed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import SourceError
from ..handlers import Event

if TYPE_CHECKING:
    from ..sources import BlockRange, DecodedLog
    from ._factories import ChainFactories

__all__ = ["fetch_missing", "fetch_rest", "position"]

_NUMBER = Event._fields.index("block_number")
_LOG_INDEX = Event._fields.index("log_index")
_BLOCK_HASH = Event._fields.index("block_hash")


def position(item: DecodedLog) -> tuple[int, int]:
    """A decoded log's place in its chain: (block number, log index)."""
    fields = item[1]
    return fields[_NUMBER], fields[_LOG_INDEX]


async def fetch_missing(
    rng: BlockRange, factories: ChainFactories, items: list[DecodedLog]
) -> list[DecodedLog]:
    """The range's logs plus those of children registered after it was fetched."""
    assert rng.fetched is not None
    wanted = {
        (contract, address): rng.first
        for contract, addresses in factories.missing(rng.fetched).items()
        for address in addresses
    }
    if not wanted:
        return items
    extra = await _closure(rng, factories, wanted, (rng.first, -1))
    return sorted(items + extra, key=position)


async def fetch_rest(
    rng: BlockRange, factories: ChainFactories, items: list[DecodedLog], pos: int
) -> None:
    """After a handler registered children at ``items[pos]``: the logs of the range's rest.

    Fetches what the range's fetch missed of those children (and of the
    grandchildren they register), and notes the grandchildren registered in
    the rest of ``items``; new logs are merged into ``items`` in place, so
    the loop (and the preload pass) go on over them.
    """
    here = position(items[pos])
    wanted = dict.fromkeys(factories.uncovered, here[0])
    factories.uncovered = []
    if factories.rescan:
        factories.rescan = False
        for key, block in factories.scan(items[pos + 1 :]).items():
            if factories.needs_fetch(*key):
                wanted.setdefault(key, block)
    if not wanted:
        return
    extra = await _closure(rng, factories, wanted, here)
    if extra:
        items[pos + 1 :] = sorted(items[pos + 1 :] + extra, key=position)


async def _closure(
    rng: BlockRange,
    factories: ChainFactories,
    wanted: dict[tuple[str, str], int],
    after: tuple[int, int],
) -> list[DecodedLog]:
    """The logs after ``after`` of ``wanted`` children (each from its block) and their children."""
    out: list[DecodedLog] = []
    while wanted:
        factories.refetched.update(wanted)
        wave = [x for x in await _refetch(rng, wanted) if position(x) > after]
        wave.sort(key=position)
        out += wave
        wanted = {
            key: block for key, block in factories.scan(wave).items() if factories.needs_fetch(*key)
        }
    return out


async def _refetch(rng: BlockRange, wanted: dict[tuple[str, str], int]) -> list[DecodedLog]:
    assert rng.refetch is not None
    by_contract: dict[str, list[str]] = {}
    for contract, address in wanted:
        by_contract.setdefault(contract, []).append(address)
    # One call chain per contract, from the earliest block any of them needs:
    # the loop drops a child's logs from before its registering block anyway.
    first = min(wanted.values())
    extra: list[DecodedLog] = []
    for contract, addresses in by_contract.items():
        extra += await rng.refetch(contract, addresses, first, rng.last)
    if rng.hashes is not None:
        for _route, fields, _raw in extra:
            if rng.hashes.get(fields[_NUMBER]) != fields[_BLOCK_HASH]:
                raise SourceError(
                    f"chain {rng.chain_id} block {fields[_NUMBER]} changed while the logs of "
                    f"newly registered children were fetched (a reorg): nothing of this range "
                    f"was committed; `indexer run` resumes from the last committed block."
                )
    return extra
