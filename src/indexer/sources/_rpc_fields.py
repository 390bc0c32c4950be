"""Fetching what ``field_selection`` and block handlers need of a range, checked against its logs.

Only blocks with matching logs (and the blocks block handlers run at) are
asked for, and only what is selected: full blocks when a transaction key
of the transaction itself is selected, headers for block keys alone,
receipts only for a receipt key (``eth_getBlockReceipts``; per
transaction with ``eth_getTransactionReceipt`` once a node answers that
it lacks the method).  Every answer names the block it belongs to, and
each must be the block of the logs it goes with: a transaction of an
orphaned block must never reach a handler on the canonical one.  An
answer from another fork (the chain moved between the calls) makes the
whole range inconsistent, and the fetcher asks again, as for logs and
headers that do not match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import SourceError
from .._fields import FieldSelection, block_from_rpc, transaction_from_rpc
from ._log import BLOCK_NUMBER, TRANSACTION_HASH
from ._rpc import METHOD_NOT_FOUND, RpcError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from .._fields import Block, Transaction
    from ._decode import DecodeRoute
    from ._rpc import RpcClient
    from ._rpc_pool import RpcPool
    from ._schedule import BlockSchedule

__all__ = ["Fetched", "FieldFetcher"]


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one range needs: the objects of its logs, and the blocks its block handlers run at."""

    attach: Callable[[int, Sequence[Any]], tuple[Transaction | None, Block | None]] | None
    blocks: dict[int, Block]


class _Inconsistent(Exception):
    """An answer belongs to another fork than the logs, or the node lacks a block."""


class FieldFetcher:
    """Fetches, per range, the fields a chain's routes select and its block handlers' blocks.

    Args:
        chain_id: For the messages of unselected fields.
        routes: The decoder's routes, whose ``fields`` say what their events carry.
        block_keys: The chain's own block selection (block handlers' blocks).
        schedule: When block handlers run.
    """

    def __init__(
        self,
        chain_id: int,
        routes: Sequence[DecodeRoute],
        block_keys: frozenset[str],
        schedule: BlockSchedule,
    ) -> None:
        self.chain_id = chain_id
        self.schedule = schedule
        self.block_keys = tuple(sorted(block_keys))
        self.selection = FieldSelection(frozenset(), block_keys)
        self.routes: list[tuple[tuple[str, ...], tuple[str, ...], str, str]] = []
        for route in routes:
            self.selection |= route.fields
            of = f"of chain {chain_id} (or of its contract {route.contract})"
            self.routes.append(
                (
                    tuple(sorted(route.fields.transaction)),
                    tuple(sorted(route.fields.block)),
                    f"event.transaction@{of}",
                    f"event.block@{of}",
                )
            )
        self.by_block = True  # eth_getBlockReceipts, until a node says it lacks it

    @property
    def active(self) -> bool:
        """Whether ranges need anything besides their logs."""
        return bool(self.selection.transaction or self.selection.block or self.schedule)

    async def fetch(
        self,
        client: RpcClient | RpcPool,
        first: int,
        last: int,
        logs: Sequence[dict[str, Any]],
        headers: Mapping[int, dict[str, Any]] | None,
    ) -> Fetched | None:
        """What ``first..last`` needs; None when an answer is of another fork or missing.

        ``headers``: the range's checked headers (within the reorg window), else None.
        """
        try:
            return await self._fetch(client, first, last, logs, headers)
        except _Inconsistent:
            return None

    async def _fetch(
        self,
        client: RpcClient | RpcPool,
        first: int,
        last: int,
        logs: Sequence[dict[str, Any]],
        headers: Mapping[int, dict[str, Any]] | None,
    ) -> Fetched:
        sel = self.selection
        # block number -> the hash the logs say; tx hash -> block number
        log_blocks: dict[int, str] = {}
        tx_blocks: dict[str, int] = {}
        for lg in logs:
            if lg.get("removed"):
                continue
            number = int(lg["blockNumber"], 16)
            log_blocks[number] = str(lg["blockHash"]).lower()
            tx_blocks[str(lg["transactionHash"]).lower()] = number
        numbers = sorted(log_blocks)
        bodies: dict[int, dict[str, Any]] = {}
        if numbers and (sel.transaction_body or (sel.block and headers is None)):
            full = bool(sel.transaction) and sel.transaction_body
            got = await client.get_blocks(numbers, full=full)
            for n, body in zip(numbers, got, strict=True):
                _same_block(body, log_blocks[n])
                assert body is not None
                bodies[n] = body
        elif headers is not None:
            bodies = {n: headers[n] for n in numbers}
        txs: dict[str, dict[str, Any]] = {}
        if sel.transaction_body and sel.transaction:
            for body in bodies.values():
                for tx in body.get("transactions") or ():
                    if isinstance(tx, dict):
                        txs[str(tx.get("hash")).lower()] = tx
            if not tx_blocks.keys() <= txs.keys():
                raise _Inconsistent  # a log's transaction is not in its block
        receipts: dict[str, dict[str, Any]] = {}
        if numbers and sel.receipts:
            receipts = await self._receipts(client, numbers, log_blocks, tx_blocks)
        blocks = await self._handler_blocks(client, first, last, log_blocks, headers)
        if not (sel.transaction or sel.block):
            return Fetched(None, blocks)
        return Fetched(self._attach(txs, receipts, bodies), blocks)

    async def _receipts(
        self,
        client: RpcClient | RpcPool,
        numbers: list[int],
        log_blocks: dict[int, str],
        tx_blocks: dict[str, int],
    ) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        if self.by_block:
            try:
                per_block = await client.get_block_receipts(numbers)
            except RpcError as exc:
                if exc.code != METHOD_NOT_FOUND:
                    raise
                self.by_block = False
            else:
                for n, items in zip(numbers, per_block, strict=True):
                    if items is None:
                        raise _Inconsistent
                    for receipt in items:
                        if isinstance(receipt, dict):
                            _same_block(receipt, log_blocks[n], "blockHash")
                            found[str(receipt.get("transactionHash")).lower()] = receipt
        if not self.by_block:
            hashes = sorted(tx_blocks)
            got = await client.get_receipts(hashes, max(numbers))
            for h, receipt in zip(hashes, got, strict=True):
                _same_block(receipt, log_blocks[tx_blocks[h]], "blockHash")
                assert receipt is not None
                found[h] = receipt
        if not tx_blocks.keys() <= found.keys():
            raise _Inconsistent
        return found

    async def _handler_blocks(
        self,
        client: RpcClient | RpcPool,
        first: int,
        last: int,
        log_blocks: dict[int, str],
        headers: Mapping[int, dict[str, Any]] | None,
    ) -> dict[int, Block]:
        due = self.schedule.due(first, last)
        if not due:
            return {}
        if headers is not None:
            got: list[dict[str, Any] | None] = [headers[n] for n in due]
        else:
            got = await client.get_blocks(due)
        where = f"block@of chain {self.chain_id}"
        out: dict[int, Block] = {}
        for n, header in zip(due, got, strict=True):
            if header is None:
                raise _Inconsistent
            if n in log_blocks:
                _same_block(header, log_blocks[n])
            out[n] = _block(where, self.block_keys, header)
        return out

    def _attach(
        self,
        txs: dict[str, dict[str, Any]],
        receipts: dict[str, dict[str, Any]],
        bodies: dict[int, dict[str, Any]],
    ) -> Callable[[int, Sequence[Any]], tuple[Transaction | None, Block | None]]:
        routes = self.routes
        cache: dict[tuple[int, Any], Any] = {}

        def attach(index: int, raw: Sequence[Any]) -> tuple[Transaction | None, Block | None]:
            tx_keys, block_keys, tx_where, block_where = routes[index]
            tx = block = None
            if tx_keys:
                h = raw[TRANSACTION_HASH]
                tx = cache.get((index, h))
                if tx is None:
                    try:
                        tx = transaction_from_rpc(tx_where, tx_keys, txs.get(h), receipts.get(h))
                    except (ValueError, TypeError, KeyError) as exc:
                        raise SourceError(
                            f"transaction {h} (block {raw[BLOCK_NUMBER]}): the node's answer lacks "
                            f"a selected field or is malformed: {exc}"
                        ) from None
                    cache[index, h] = tx
            if block_keys:
                n = raw[BLOCK_NUMBER]
                block = cache.get((index, n))
                if block is None:
                    block = cache[index, n] = _block(block_where, block_keys, bodies[n])
            return tx, block

        return attach


def _same_block(answer: object, block_hash: str, key: str = "hash") -> None:
    if not isinstance(answer, dict) or str(answer.get(key)).lower() != block_hash:
        raise _Inconsistent


def _block(where: str, keys: Sequence[str], header: dict[str, Any]) -> Block:
    try:
        return block_from_rpc(where, keys, header)
    except (ValueError, TypeError, KeyError) as exc:
        raise SourceError(
            f"block {header.get('number')}: the node's header lacks a selected field or is "
            f"malformed: {exc}"
        ) from None
