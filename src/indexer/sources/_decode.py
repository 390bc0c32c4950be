"""Routing and decoding raw logs: topic0 and address pick a route, its ABI decodes the log.

One implementation serves every source.  The file reader's child process
decodes as it parses (the parent then only runs handlers: decoding is about
a fifth of the parent's time otherwise, see docs/design.md), and the
JSON-RPC fetcher decodes each range before it hands it over.

A decoded log is a plain tuple, so that ``marshal`` can carry it between
processes: ``(route index, event fields, raw)``.  The event fields are in
:class:`~indexer.Event` order, ready for ``tuple.__new__(Event, fields)``;
``raw`` is ``(topics, data)`` when raw events are kept, else None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import DecodeError
from .._fields import FieldSelection
from ._filter import LogFilter
from ._log import (
    ADDRESS,
    BLOCK_HASH,
    BLOCK_NUMBER,
    BLOCK_TIMESTAMP,
    DATA,
    LOG_INDEX,
    TOPICS,
    TRANSACTION_HASH,
    DecodedLog,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..abi import EventSpec

__all__ = ["DecodeRoute", "DecodedLog", "LogDecoder", "route_filter"]


@dataclass(frozen=True, slots=True)
class DecodeRoute:
    """One (contract, event) of a chain that has handlers.

    Picklable (the spec rebuilds its decoder on first use), so the reader
    process gets the same routes, in the same order, as the parent: a
    decoded log names its route by position in that order.
    """

    contract: str
    event: EventSpec
    addresses: frozenset[str] | None
    fields: FieldSelection = FieldSelection()  # noqa: RUF009 - frozen, so shared safely
    """The transaction and block keys the contract's events carry."""
    child: bool = False
    """A factory's child contract: ``addresses`` is None here, and the processing loop
    keeps only the logs of registered children (runtime/_factories.py)."""


def route_filter(routes: Sequence[DecodeRoute]) -> LogFilter:
    """topic0 -> allowed addresses (None when any route of that topic0 is a wildcard)."""
    wanted: dict[str, frozenset[str] | None] = {}
    for r in routes:
        topic0 = r.event.topic0
        if topic0 in wanted:
            known = wanted[topic0]
            wanted[topic0] = None if known is None or r.addresses is None else known | r.addresses
        else:
            wanted[topic0] = r.addresses
    return LogFilter(wanted)


class LogDecoder:
    """Decodes one chain's raw logs into :data:`DecodedLog` tuples.

    Logs whose topic0 no route wants are dropped.  A log that does not
    decode is skipped (and counted per route) when its route is a wildcard,
    since other standards share topic0s (an ERC721 Transfer has the ERC20
    topic0 but four topics); with explicit addresses it is bad input and
    raises :class:`~indexer.DecodeError` naming the block, log and contract.
    """

    def __init__(self, chain_id: int, routes: Sequence[DecodeRoute], *, keep_raw: bool) -> None:
        self.chain_id = chain_id
        self.routes = tuple(routes)
        self.keep_raw = keep_raw
        self._by_topic: dict[
            str,
            list[tuple[int, DecodeRoute, Callable[[tuple[str, ...], str], dict[str, Any]]]],
        ] = {}
        for index, route in enumerate(routes):
            self._by_topic.setdefault(route.event.topic0, []).append(
                (index, route, route.event.decoder())
            )
        # A listed address wins over a child route of the same topic0 (config
        # allows the pair: a child registered at a listed address is the
        # listed contract's).  Stable: otherwise configuration order.
        for candidates in self._by_topic.values():
            candidates.sort(key=lambda c: c[1].child)
        # route index -> logs skipped since the last take_skipped()
        self.skipped: dict[int, int] = {}

    def take_skipped(self) -> dict[int, int]:
        """Skip counts since the last call, and reset them."""
        skipped, self.skipped = self.skipped, {}
        return skipped

    def decode(
        self,
        logs: Sequence[Sequence[Any]],
        attach: Callable[[int, Sequence[Any]], tuple[Any, Any]] | None = None,
    ) -> list[DecodedLog]:
        """Route and decode ``logs`` (RawLogs or tuples in RawLog field order).

        ``attach(route index, raw log)`` gives the event's transaction and
        block when something is selected; without it both are None.
        """
        by_topic, chain_id, keep_raw = self._by_topic, self.chain_id, self.keep_raw
        out: list[DecodedLog] = []
        append = out.append
        for raw in logs:
            topics = raw[TOPICS]
            if not topics:
                continue
            candidates = by_topic.get(topics[0])
            if candidates is None:
                continue
            address = raw[ADDRESS]
            for index, route, decode in candidates:  # noqa: B007 - the match is used below
                if route.addresses is None or address in route.addresses:
                    break
            else:
                continue
            params: Any
            try:
                params = decode(topics, raw[DATA])
            except DecodeError as exc:
                if route.child:
                    # Only the processing loop knows whether this address is a
                    # registered child (then this is an error) or another
                    # contract sharing the topic0 (then it is dropped): it gets
                    # the message in place of the parameters.
                    params = (
                        f"chain {chain_id} block {raw[BLOCK_NUMBER]} log {raw[LOG_INDEX]} "
                        f"(tx {raw[TRANSACTION_HASH]}, address {address}) of a registered child "
                        f"does not decode as {route.contract}.{route.event.signature}: {exc}. "
                        f"Check the event signature/ABI for this contract."
                    )
                elif route.addresses is None:
                    self.skipped[index] = self.skipped.get(index, 0) + 1
                    continue
                else:
                    raise DecodeError(
                        f"chain {chain_id} block {raw[BLOCK_NUMBER]} log {raw[LOG_INDEX]} "
                        f"(tx {raw[TRANSACTION_HASH]}, address {address}) does not decode as "
                        f"{route.contract}.{route.event.signature}: {exc}. The contract's addresses "
                        f"are listed explicitly in indexer.yaml, so this is treated as bad input; "
                        f"check the event signature/ABI for this contract."
                    ) from None
            fields = (
                params,
                route.contract,
                route.event.name,
                address,
                chain_id,
                raw[BLOCK_NUMBER],
                raw[LOG_INDEX],
                raw[TRANSACTION_HASH],
                raw[BLOCK_HASH],
                raw[BLOCK_TIMESTAMP],
                None,  # transaction and block: None reads as nothing selected
                None,
            )
            if attach is not None:
                fields = (*fields[:10], *attach(index, raw))
            append((index, fields, (topics, raw[DATA]) if keep_raw else None))
        return out
