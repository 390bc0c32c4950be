"""``field_selection``: reading it, and checking that a file source can provide it."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from .._fields import (
    BLOCK_FIELDS,
    CRYO_BLOCK_COLUMNS,
    CRYO_TRANSACTION_COLUMNS,
    TRANSACTION_FIELDS,
    FieldSelection,
    cryo_column,
)
from ._validate import as_str, read_mapping

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ._validate import Where

__all__ = ["check_file_selection", "read_selection"]

# Columns every cryo file of the kind must have: to be joined to the logs,
# and (blocks) for the fields every Block has.  cryo's default blocks
# columns leave out parent_hash: `--include-columns parent_hash` adds it.
_TX_KEY_COLUMNS = ("block_number", "transaction_hash")
_BLOCK_KEY_COLUMNS = ("block_number", "block_hash", "parent_hash", "timestamp")


def read_selection(raw: object, at: Where) -> FieldSelection:
    """A ``field_selection`` mapping (absent or null: nothing selected)."""
    if raw is None:
        return FieldSelection()
    m = read_mapping(raw, at, ("transaction", "block"), ())
    return FieldSelection(
        _keys(m.get("transaction"), at.key("transaction"), TRANSACTION_FIELDS),
        _keys(m.get("block"), at.key("block"), BLOCK_FIELDS),
    )


def _keys(raw: object, at: Where, valid: tuple[str, ...]) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        at.fail(f"must be a list of field names, e.g. [{', '.join(valid[:2])}].")
    found: set[str] = set()
    for i, item in enumerate(raw):
        # YAML reads a bare `from:`-less `from` as the string it is; `on`/`yes`
        # would be booleans, but no field is called that.
        key = as_str(item, at.item(i)).strip()
        if key == "from_":
            key = "from"  # the attribute's spelling is accepted for the key
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            at.item(i).fail(f"unknown field {key!r}.{hint} The fields are: {', '.join(valid)}.")
        if key in found:
            at.item(i).fail(f"{key!r} is listed twice.")
        found.add(key)
    return frozenset(found)


def check_file_selection(
    logs: Path,
    blocks: Path | None,
    transactions: Path | None,
    selections: Sequence[tuple[Where, FieldSelection]],
    source: Where,
) -> None:
    """Fail on a selected key that the file source's files cannot provide."""
    tx_columns = _columns(transactions, source.key("transactions"))
    block_columns = _columns(blocks, source.key("blocks"))
    if tx_columns is not None:
        _require(tx_columns, _TX_KEY_COLUMNS, transactions, source.key("transactions"))
    if block_columns is not None:
        _require(block_columns, _BLOCK_KEY_COLUMNS, blocks, source.key("blocks"))
    for at, selection in selections:
        for key in sorted(selection.transaction):
            here = at.key("transaction")
            if tx_columns is None:
                here.fail(
                    f"`{key}` needs transactions, which the file source {logs.name} does not have: "
                    "add `transactions: <cryo transactions .parquet>` to the chain's `source`, "
                    "or remove the key."
                )
            if cryo_column("transaction", key, tx_columns) is None:
                here.fail(
                    f"`{key}` needs the column {_names(CRYO_TRANSACTION_COLUMNS[key])}, which "
                    f"{transactions} does not have; export it with cryo, or remove the key."
                )
        for key in sorted(selection.block):
            here = at.key("block")
            if block_columns is None:
                here.fail(
                    f"`{key}` needs blocks, which the file source {logs.name} does not have: "
                    "add `blocks: <cryo blocks .parquet>` to the chain's `source`, or remove the key."
                )
            if cryo_column("block", key, block_columns) is None:
                here.fail(
                    f"`{key}` needs the column {_names(CRYO_BLOCK_COLUMNS[key])}, which "
                    f"{blocks} does not have; export it with cryo, or remove the key."
                )


def _names(columns: Sequence[str]) -> str:
    if len(columns) == 1:
        return repr(columns[0])
    return "one of " + ", ".join(map(repr, columns))


def _columns(path: Path | None, at: Where) -> frozenset[str] | None:
    if path is None:
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return frozenset(pq.read_schema(path).names)
    except (OSError, ValueError, pa.ArrowException) as exc:
        at.fail(f"cannot read {path} as parquet: {exc}.")


def _require(columns: frozenset[str], needed: Sequence[str], path: Path | None, at: Where) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        at.fail(
            f"{path} lacks the column(s) {', '.join(missing)}, which it needs to give "
            f"{'a Block' if 'parent_hash' in needed else 'transactions to the logs'}; export "
            f"them with cryo (`--include-columns {' '.join(missing)}`)."
        )
