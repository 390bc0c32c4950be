"""Transaction and block fields for a file chain: joined in the reader process, built in the parent.

A file chain's ``field_selection`` and block handlers read cryo's
``transactions`` and ``blocks`` parquet files (see ``_cryo_tables.py``).
The join runs in the reader's child process, next to the logs: per chunk,
it reads the rows of the chunk's blocks only (transactions by hash,
blocks by number), checks that they belong to the logs' blocks (same
block number, and the same block hash where both files have one: a row of
another fork must never reach a handler), and sends them as plain tuples,
one per transaction and per block, which ``marshal`` carries.  The parent
builds one :class:`~indexer.Transaction` or :class:`~indexer.Block` per
(route, transaction or block) of the chunk and puts it in the events'
fields; a log whose route selects nothing is passed on untouched.

Without a selection and block handlers there is no plan, and the reader
does nothing of this (the hot path is unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import SourceError
from .._fields import BLOCK_ALWAYS, attribute, cryo_column, field_kind, make_block, make_transaction
from ._cryo_tables import CryoTable, python_values

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from .._fields import Block, Transaction
    from ._decode import DecodeRoute
    from ._log import DecodedLog
    from ._schedule import BlockSchedule

__all__ = ["FileFieldPlan", "FileFields", "FileJoin", "Joined"]

# (transactions by hash, blocks by number, blocks block handlers run at),
# the rows in the plan's key order: what the child sends with a chunk.
Joined = tuple[dict[str, tuple[Any, ...]], dict[int, tuple[Any, ...]], list[int]]

# Positions in an Event's fields (see handlers/_event.py).
_NUMBER, _TX_HASH, _BLOCK_HASH = 5, 7, 8
# Block rows: hash, parent_hash, timestamp, then the plan's block keys.
_BLOCK_HEAD = ("hash", "parent_hash", "timestamp")


@dataclass(frozen=True, slots=True)
class FileFieldPlan:
    """What a file chain's reader joins to its logs; picklable, for the child process.

    ``tx_keys`` and ``block_keys`` are every key any route (or, for blocks,
    the chain's block handlers) reads, in the order of the values in the
    rows the child sends (``block_keys`` without the ones every Block has);
    ``routes`` holds, per route, its own keys and its contract;
    ``block_routes`` the routes whose events carry a Block (any block key
    selected, even one every Block has).
    """

    chain_id: int
    blocks: Path | None
    transactions: Path | None
    tx_keys: tuple[str, ...]
    block_keys: tuple[str, ...]
    routes: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...]
    block_routes: frozenset[int]
    handler_keys: tuple[str, ...]
    schedule: BlockSchedule

    @classmethod
    def build(
        cls,
        chain_id: int,
        routes: Sequence[DecodeRoute],
        *,
        blocks: Path | None,
        transactions: Path | None,
        handler_keys: frozenset[str],
        schedule: BlockSchedule,
    ) -> FileFieldPlan | None:
        """The plan for these routes and block handlers; None when they need nothing."""
        per_route = tuple(
            (
                tuple(sorted(r.fields.transaction)),
                tuple(sorted(k for k in r.fields.block if k not in BLOCK_ALWAYS)),
                r.contract,
            )
            for r in routes
        )
        block_routes = frozenset(i for i, r in enumerate(routes) if r.fields.block)
        tx_keys = sorted({k for r in routes for k in r.fields.transaction})
        if not tx_keys and not block_routes and not schedule:
            return None
        own = tuple(sorted(k for k in handler_keys if k not in BLOCK_ALWAYS)) if schedule else ()
        block_keys = {k for _, keys, _ in per_route for k in keys} | set(own)
        return cls(
            chain_id,
            blocks,
            transactions,
            tuple(tx_keys),
            tuple(sorted(block_keys)),
            per_route,
            block_routes,
            own,
            schedule,
        )


# --------------------------------------------------------------------------
# The child: reading the rows of a chunk's blocks
# --------------------------------------------------------------------------


class FileJoin:
    """The reader process's side: the rows of the transactions and blocks of each chunk."""

    def __init__(self, plan: FileFieldPlan) -> None:
        self.plan = plan
        self.block_routes = block_routes = plan.block_routes
        self.tx_routes = frozenset(i for i, r in enumerate(plan.routes) if r[0])
        self._tx_columns: list[tuple[str, str]] = []
        self._block_columns: list[tuple[str, str]] = []
        self._txs: CryoTable | None = None
        self._blocks: CryoTable | None = None
        if plan.tx_keys:
            assert plan.transactions is not None  # config checked it
            names = _names(plan.transactions)
            for key in plan.tx_keys:
                column = cryo_column("transaction", key, names)
                assert column is not None  # config checked it
                self._tx_columns.append((column, field_kind("transaction", key)))
            optional = [c for c in ("block_hash",) if c in names]
            self._tx_hash_check = bool(optional)
            self._txs = CryoTable(
                plan.transactions,
                "transactions",
                ["transaction_hash", *optional, *(c for c, _ in self._tx_columns)],
            )
        if block_routes or plan.schedule:
            assert plan.blocks is not None  # config checked it
            names = _names(plan.blocks)
            self._block_columns = [
                ("block_hash", "hex"),
                ("parent_hash", "hex"),
                ("timestamp", "int"),
            ]
            for key in plan.block_keys:
                column = cryo_column("block", key, names)
                assert column is not None
                self._block_columns.append((column, field_kind("block", key)))
            self._blocks = CryoTable(plan.blocks, "blocks", [c for c, _ in self._block_columns])

    def last_block(self) -> int | None:
        """The blocks file's last block (None: no blocks file, or it is empty)."""
        return None if self._blocks is None else self._blocks.last_block()

    def join(self, first: int, last: int, decoded: Sequence[DecodedLog]) -> Joined:
        """The rows for the decoded logs of blocks ``first..last``, and its handler blocks."""
        tx_of: dict[str, tuple[int, str | None]] = {}
        block_of: dict[int, str | None] = {}
        tx_routes, block_routes = self.tx_routes, self.block_routes
        for index, fields, _raw in decoded:
            if index in tx_routes:
                tx_of[fields[_TX_HASH]] = (fields[_NUMBER], fields[_BLOCK_HASH])
            if index in block_routes:
                block_of[fields[_NUMBER]] = fields[_BLOCK_HASH]
        due = self.plan.schedule.due(first, last) if self.plan.schedule else []
        for n in due:
            block_of.setdefault(n, None)
        txs = self._transactions(tx_of) if tx_of else {}
        blocks = self._block_rows(block_of) if block_of else {}
        return txs, blocks, due

    def handler_chunks(self, first: int, last: int, span: int) -> Iterator[tuple[int, Joined]]:
        """Chunks without logs for the handler blocks of ``first..last``, ``span`` blocks at most each.

        Only windows holding a handler block are sent; the next chunk's range
        covers the others.
        """
        for low in range(first, last + 1, span):
            high = min(low + span - 1, last)
            due = self.plan.schedule.due(low, high)
            if due:
                yield high, ({}, self._block_rows(dict.fromkeys(due)), due)

    def _transactions(self, tx_of: dict[str, tuple[int, str | None]]) -> dict[str, tuple[Any, ...]]:
        assert self._txs is not None
        numbers = [n for n, _ in tx_of.values()]
        table = self._txs.rows(min(numbers), max(numbers), "transaction_hash", list(tx_of))
        path = self._txs.path
        hashes = python_values(table, "transaction_hash", "hex", path)
        found: dict[str, tuple[Any, ...]] = {}
        values = [python_values(table, c, kind, path) for c, kind in self._tx_columns]
        numbers_col = table.column("block_number").to_pylist()
        block_hashes = (
            python_values(table, "block_hash", "hex?", path) if self._tx_hash_check else None
        )
        for row, h in enumerate(hashes):
            number, block_hash = tx_of[h]
            if numbers_col[row] != number or (
                block_hashes is not None
                and block_hash is not None
                and block_hashes[row] not in (None, block_hash)
            ):
                # Same hash, another block: a row of another fork, or of another chain.
                raise SourceError(
                    f"transactions file {path}: transaction {h} is in block {numbers_col[row]} "
                    f"({block_hashes[row] if block_hashes else 'no hash'}), but its logs are in "
                    f"block {number} ({block_hash}); the files must be of the same chain and fork."
                )
            if h in found:
                raise SourceError(f"transactions file {path}: transaction {h} appears twice.")
            found[h] = _row(values, row, self._tx_columns, path, f"transaction {h}")
        missing = [h for h in tx_of if h not in found]
        if missing:
            number = tx_of[missing[0]][0]
            raise SourceError(
                f"transactions file {path} lacks transaction {missing[0]} (block {number})"
                f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}, whose logs "
                "are selected; export the transactions of the logs' blocks."
            )
        return found

    def _block_rows(self, block_of: dict[int, str | None]) -> dict[int, tuple[Any, ...]]:
        assert self._blocks is not None
        table = self._blocks.rows(min(block_of), max(block_of), "block_number", sorted(block_of))
        path = self._blocks.path
        numbers = table.column("block_number").to_pylist()
        values = [python_values(table, c, kind, path) for c, kind in self._block_columns]
        found: dict[int, tuple[Any, ...]] = {}
        for row, n in enumerate(numbers):
            if n in found:
                raise SourceError(f"blocks file {path}: block {n} appears twice.")
            found[n] = _row(values, row, self._block_columns, path, f"block {n}")
            wanted = block_of[n]
            if wanted is not None and found[n][0] != wanted:
                raise SourceError(
                    f"blocks file {path}: block {n} has hash {found[n][0]}, but the logs say "
                    f"{wanted}; the files must be of the same chain and fork."
                )
        missing = [n for n in sorted(block_of) if n not in found]
        if missing:
            raise SourceError(
                f"blocks file {path} lacks block {missing[0]}"
                f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}, which "
                "a selected block field or a block handler needs; export every block of the range."
            )
        return found


def _names(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise SourceError(f"{path}: cannot read as parquet: {exc}") from None


def _row(
    values: list[list[Any]], row: int, columns: list[tuple[str, str]], path: Path, what: str
) -> tuple[Any, ...]:
    out = tuple(v[row] for v in values)
    for value, (column, kind) in zip(out, columns, strict=True):
        if value is None and not kind.endswith("?"):
            raise SourceError(f"{path}: {what} has no {column} (null).")
    return out


# --------------------------------------------------------------------------
# The parent: objects from the rows
# --------------------------------------------------------------------------


class FileFields:
    """The parent's side: puts Transaction and Block objects into a chunk's events."""

    def __init__(self, plan: FileFieldPlan) -> None:
        chain, block_routes = plan.chain_id, plan.block_routes
        self.routes: list[
            tuple[list[tuple[str, int]], list[tuple[str, int]] | None, str, str] | None
        ] = []
        for i, (tx_keys, block_keys, contract) in enumerate(plan.routes):
            if not tx_keys and i not in block_routes:
                self.routes.append(None)
                continue
            of = f"of chain {chain} (or of its contract {contract})"
            self.routes.append(
                (
                    [(attribute(k), plan.tx_keys.index(k)) for k in tx_keys],
                    _block_positions(plan, block_keys) if i in block_routes else None,
                    f"event.transaction@{of}",
                    f"event.block@{of}",
                )
            )
        self.handler_positions = _block_positions(plan, plan.handler_keys)
        self.handler_where = f"block@of chain {chain}"

    def apply(
        self, decoded: list[DecodedLog], joined: Joined
    ) -> tuple[list[DecodedLog], dict[int, Block]]:
        """The chunk's logs with their objects, and the blocks its block handlers run at."""
        txs, blocks, due = joined
        routes = self.routes
        cache: dict[tuple[int, Any], Any] = {}
        out: list[DecodedLog] = []
        append = out.append
        for item in decoded:
            index, fields, raw = item
            spec = routes[index]
            if spec is None:
                append(item)
                continue
            tx_positions, block_positions, tx_where, block_where = spec
            tx: Transaction | None = None
            block: Block | None = None
            if tx_positions:
                h = fields[_TX_HASH]
                tx = cache.get((index, h))
                if tx is None:
                    row = txs[h]
                    tx = cache[index, h] = make_transaction(
                        tx_where, [(name, row[p]) for name, p in tx_positions]
                    )
            if block_positions is not None:
                n = fields[_NUMBER]
                block = cache.get((index, n))
                if block is None:
                    block = cache[index, n] = _block(block_where, n, blocks[n], block_positions)
            append((index, (*fields[:10], tx, block), raw))
        handler_blocks = {
            n: _block(self.handler_where, n, blocks[n], self.handler_positions) for n in due
        }
        return out, handler_blocks


def _block_positions(plan: FileFieldPlan, keys: Sequence[str]) -> list[tuple[str, int]]:
    head = len(_BLOCK_HEAD)
    return [(k, head + plan.block_keys.index(k)) for k in keys if k not in BLOCK_ALWAYS]


def _block(
    where: str, number: int, row: tuple[Any, ...], positions: list[tuple[str, int]]
) -> Block:
    values: list[tuple[str, Any]] = [("number", number)]
    values += zip(_BLOCK_HEAD, row[: len(_BLOCK_HEAD)], strict=True)
    values += [(name, row[p]) for name, p in positions]
    return make_block(where, values)
