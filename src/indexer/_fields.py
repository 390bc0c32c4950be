"""Transaction and block fields: the names a project selects, and the objects handlers read.

A leaf: config validates ``field_selection`` against these names, sources
build the objects from JSON-RPC answers or cryo columns, handlers read them.

``Transaction`` and ``Block`` are immutable objects with one slot per field.
Unselected fields are left unset; reading one goes through ``__getattr__``,
which raises an ``AttributeError`` naming the key to add to indexer.yaml.
A set slot is read by the slot descriptor, so a selected field costs no
more than an attribute of any slotted object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "BLOCK_ALWAYS",
    "BLOCK_FIELDS",
    "CRYO_BLOCK_COLUMNS",
    "CRYO_TRANSACTION_COLUMNS",
    "RECEIPT_FIELDS",
    "TRANSACTION_FIELDS",
    "Block",
    "FieldSelection",
    "Transaction",
    "attribute",
    "block_from_rpc",
    "cryo_column",
    "field_kind",
    "make_block",
    "make_transaction",
    "transaction_from_rpc",
]

# Key in indexer.yaml -> (JSON-RPC key, kind).  Kinds: "int" (a hex
# quantity), "hex" (lower-cased hex data, addresses and hashes), "address?"
# (an address or null: `to` of a contract creation), "int?" (absent on old
# transaction types or blocks).
_TX_KEYS: dict[str, tuple[str, str]] = {
    "from": ("from", "hex"),
    "to": ("to", "hex?"),
    "value": ("value", "int"),
    "gas": ("gas", "int"),
    "gas_price": ("gasPrice", "int?"),
    "max_fee_per_gas": ("maxFeePerGas", "int?"),
    "max_priority_fee_per_gas": ("maxPriorityFeePerGas", "int?"),
    "input": ("input", "hex"),
    "nonce": ("nonce", "int"),
    "transaction_index": ("transactionIndex", "int"),
    "type": ("type", "int?"),
    # From the receipt.
    "status": ("status", "int?"),
    "gas_used": ("gasUsed", "int"),
    "effective_gas_price": ("effectiveGasPrice", "int?"),
}
_BLOCK_KEYS: dict[str, tuple[str, str]] = {
    "timestamp": ("timestamp", "int"),
    "parent_hash": ("parentHash", "hex"),
    "miner": ("miner", "hex"),
    "gas_used": ("gasUsed", "int"),
    "gas_limit": ("gasLimit", "int"),
    "base_fee_per_gas": ("baseFeePerGas", "int?"),
    "difficulty": ("difficulty", "int?"),
    "size": ("size", "int?"),
    "extra_data": ("extraData", "hex"),
    "state_root": ("stateRoot", "hex"),
    "transactions_root": ("transactionsRoot", "hex"),
    "receipts_root": ("receiptsRoot", "hex"),
    "logs_bloom": ("logsBloom", "hex"),
    "blob_gas_used": ("blobGasUsed", "int?"),
    "excess_blob_gas": ("excessBlobGas", "int?"),
}

TRANSACTION_FIELDS: tuple[str, ...] = tuple(_TX_KEYS)
"""The keys ``field_selection.transaction`` may list."""
RECEIPT_FIELDS: frozenset[str] = frozenset({"status", "gas_used", "effective_gas_price"})
"""The transaction keys that come from the receipt."""
BLOCK_FIELDS: tuple[str, ...] = tuple(_BLOCK_KEYS)
"""The keys ``field_selection.block`` may list."""
# Key -> the columns of cryo's `transactions` and `blocks` datasets that may
# hold it, in order of preference.  cryo writes a U256 such as `value` as
# `value_binary`, `value_string` and `value_f64` (its --u256-types); the
# float is lossy, so only the first two (or a plain `value`) are read.
# cryo has no `effective_gas_price` column (its `gas_price` already is the
# price paid) nor blob columns: a file may still carry them under these names.
CRYO_TRANSACTION_COLUMNS: dict[str, tuple[str, ...]] = {
    "from": ("from_address",),
    "to": ("to_address",),
    "value": ("value_binary", "value_string", "value"),
    "gas": ("gas_limit",),
    "gas_price": ("gas_price",),
    "max_fee_per_gas": ("max_fee_per_gas",),
    "max_priority_fee_per_gas": ("max_priority_fee_per_gas",),
    "input": ("input",),
    "nonce": ("nonce",),
    "transaction_index": ("transaction_index",),
    "type": ("transaction_type",),
    "status": ("success",),
    "gas_used": ("gas_used",),
    "effective_gas_price": ("effective_gas_price",),
}
CRYO_BLOCK_COLUMNS: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp",),
    "parent_hash": ("parent_hash",),
    "miner": ("author",),
    "gas_used": ("gas_used",),
    "gas_limit": ("gas_limit",),
    "base_fee_per_gas": ("base_fee_per_gas",),
    "difficulty": ("difficulty",),
    "size": ("size",),
    "extra_data": ("extra_data",),
    "state_root": ("state_root",),
    "transactions_root": ("transactions_root",),
    "receipts_root": ("receipts_root",),
    "logs_bloom": ("logs_bloom",),
    "blob_gas_used": ("blob_gas_used",),
    "excess_blob_gas": ("excess_blob_gas",),
}
# Every Block has these, selected or not (the reorg checks fetch them anyway).
_BLOCK_ALWAYS = ("number", "hash", "parent_hash", "timestamp")
BLOCK_ALWAYS: tuple[str, ...] = _BLOCK_ALWAYS
"""The fields every :class:`Block` has, selected or not."""


def field_kind(kind: str, key: str) -> str:
    """How a key's value is typed: "int", "int?" (may be None), "hex" or "hex?"."""
    keys = _TX_KEYS if kind == "transaction" else _BLOCK_KEYS
    return keys[key][1]


def cryo_column(kind: str, key: str, names: Iterable[str]) -> str | None:
    """The column of a cryo ``kind`` ("transaction"/"block") file that holds ``key``, if any."""
    have = set(names)
    table = CRYO_TRANSACTION_COLUMNS if kind == "transaction" else CRYO_BLOCK_COLUMNS
    return next((c for c in table[key] if c in have), None)


def attribute(key: str) -> str:
    """The Python attribute of a selectable key: ``from`` is ``from_`` (a keyword)."""
    return "from_" if key == "from" else key


@dataclass(frozen=True, slots=True)
class FieldSelection:
    """The transaction and block keys selected for a chain or a contract."""

    transaction: frozenset[str] = frozenset()
    block: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.transaction or self.block)

    def __or__(self, other: FieldSelection) -> FieldSelection:
        return FieldSelection(self.transaction | other.transaction, self.block | other.block)

    @property
    def receipts(self) -> bool:
        """Whether a selected transaction key comes from the receipt."""
        return not self.transaction.isdisjoint(RECEIPT_FIELDS)

    @property
    def transaction_body(self) -> bool:
        """Whether a selected transaction key comes from the transaction itself."""
        return not self.transaction <= RECEIPT_FIELDS


class _Fields:
    """Slots, set once; unset ones raise an error that names the key to select."""

    __slots__ = ("_where",)
    _kind: ClassVar[str]
    _where: str

    def _unset(self, name: str) -> NoReturn:
        # As __getattr__: only reached for a slot that is unset (or a name that is no field).
        key = "from" if name == "from_" else name
        keys = TRANSACTION_FIELDS if self._kind == "transaction" else BLOCK_FIELDS
        if name.startswith("_") or key not in keys:
            raise AttributeError(
                f"{type(self).__name__} has no field {name!r}; the fields are: "
                f"{', '.join(attribute(k) for k in keys)}."
            )
        expr, _, of = object.__getattribute__(self, "_where").partition("@")
        raise AttributeError(
            f"{expr}.{name} was not selected: add `{key}` to field_selection.{self._kind} "
            f"{of} in indexer.yaml."
        )

    if not TYPE_CHECKING:
        # Hidden from type checkers: a class with __getattr__ has every
        # attribute to mypy, which would then accept `transaction.frm`.
        __getattr__ = _unset

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable; {name!r} cannot be set.")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable; {name!r} cannot be deleted.")

    def _items(self) -> list[tuple[str, Any]]:
        out = []
        for name in type(self).__slots__:
            try:
                out.append((name, object.__getattribute__(self, name)))
            except AttributeError:
                continue
        return out

    def as_dict(self) -> dict[str, Any]:
        """The fields that are set, by attribute name."""
        return dict(self._items())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Fields)
        return self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.as_dict().items()))))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._items())
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.as_dict()))


class Transaction(_Fields):
    """The transaction of an event: the keys selected in ``field_selection.transaction``.

    Addresses, hashes and ``input`` are lower-case ``0x`` hex; numbers are
    ``int``; ``to`` is None for a contract creation; ``gas_price``,
    ``max_fee_per_gas``, ``max_priority_fee_per_gas`` and ``type`` are None
    where the transaction type has none.  ``status``, ``gas_used`` and
    ``effective_gas_price`` come from the receipt.  ``from`` is ``from_``.
    Reading a key that was not selected raises ``AttributeError`` naming it.
    """

    __slots__ = tuple(attribute(k) for k in TRANSACTION_FIELDS)
    _kind = "transaction"

    from_: str
    to: str | None
    value: int
    gas: int
    gas_price: int | None
    max_fee_per_gas: int | None
    max_priority_fee_per_gas: int | None
    input: str
    nonce: int
    transaction_index: int
    type: int | None
    status: int | None
    gas_used: int
    effective_gas_price: int | None


class Block(_Fields):
    """A block: ``number``, ``hash``, ``parent_hash``, ``timestamp`` and the selected block keys.

    Hashes, addresses and data are lower-case ``0x`` hex, numbers ``int``;
    ``base_fee_per_gas`` and the blob fields are None before their forks.
    Reading a key that was not selected raises ``AttributeError`` naming it.
    """

    __slots__ = ("number", "hash", *BLOCK_FIELDS)
    _kind = "block"

    number: int
    hash: str
    timestamp: int
    parent_hash: str
    miner: str
    gas_used: int
    gas_limit: int
    base_fee_per_gas: int | None
    difficulty: int | None
    size: int | None
    extra_data: str
    state_root: str
    transactions_root: str
    receipts_root: str
    logs_bloom: str
    blob_gas_used: int | None
    excess_blob_gas: int | None


def _rebuild(cls: type[_Fields], values: Mapping[str, Any]) -> _Fields:
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


_set = object.__setattr__


def make_transaction(where: str, values: Iterable[tuple[str, Any]]) -> Transaction:
    """A Transaction with ``values`` (attribute name, value); ``where`` names it in errors.

    ``where`` is ``"event.transaction@of chain 1"``: the expression a
    handler wrote, then where the keys are selected.
    """
    tx = object.__new__(Transaction)
    _set(tx, "_where", where)
    for name, value in values:
        _set(tx, name, value)
    return tx


def make_block(where: str, values: Iterable[tuple[str, Any]]) -> Block:
    """A Block with ``values`` (attribute name, value); see :func:`make_transaction`."""
    block = object.__new__(Block)
    _set(block, "_where", where)
    for name, value in values:
        _set(block, name, value)
    return block


def _convert(value: Any, kind: str, key: str) -> Any:
    if value is None:
        if kind.endswith("?"):
            return None
        raise ValueError(f"{key} is missing")
    if kind.startswith("int"):
        if isinstance(value, int):
            return value
        return int(value, 16)
    return str(value).lower()


def transaction_from_rpc(
    where: str,
    keys: Iterable[str],
    tx: Mapping[str, Any] | None,
    receipt: Mapping[str, Any] | None,
) -> Transaction:
    """The selected ``keys`` of a JSON-RPC transaction object and its receipt.

    Raises:
        ValueError: a selected key is missing or malformed in the answer.
    """
    values = []
    for key in keys:
        rpc_key, kind = _TX_KEYS[key]
        source = receipt if key in RECEIPT_FIELDS else tx
        if source is None:
            raise ValueError(f"no {'receipt' if key in RECEIPT_FIELDS else 'transaction'}")
        values.append((attribute(key), _convert(source.get(rpc_key), kind, rpc_key)))
    return make_transaction(where, values)


def block_from_rpc(where: str, keys: Iterable[str], header: Mapping[str, Any]) -> Block:
    """A Block of a JSON-RPC block object: the four fields every Block has, and ``keys``.

    Raises:
        ValueError: a selected key is missing or malformed in the answer.
    """
    values: list[tuple[str, Any]] = [
        ("number", int(header["number"], 16)),
        ("hash", str(header["hash"]).lower()),
        ("parent_hash", str(header["parentHash"]).lower()),
        ("timestamp", int(header["timestamp"], 16)),
    ]
    for key in keys:
        if key in _BLOCK_ALWAYS:
            continue
        rpc_key, kind = _BLOCK_KEYS[key]
        values.append((key, _convert(header.get(rpc_key), kind, rpc_key)))
    return make_block(where, values)


# Users import them from `indexer`; show them as such.
Transaction.__module__ = Block.__module__ = "indexer"
