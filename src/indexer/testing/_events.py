"""Building logs and events from an event ABI and parameter values, for tests.

:func:`encode_log` ABI-encodes parameter values the way a contract emits
them: indexed parameters go into topics, the others into data.
:func:`make_log` places that log in a block, as a source delivers it, and
:func:`make_event` decodes it with the framework's own decoder, so a test
sees exactly the values production handlers see (addresses lowercase,
arrays as lists, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eth_hash.auto import keccak

from .._fields import (
    BLOCK_FIELDS,
    TRANSACTION_FIELDS,
    Block,
    Transaction,
    attribute,
    make_transaction,
)
from .._fields import (
    make_block as _make_block,
)
from ..abi import EventSpec, parse_event_signature
from ..handlers import Event
from ..sources import RawLog
from ._chain import LogSpec, _hex

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..abi import AbiType, Param

__all__ = ["encode_log", "make_block", "make_event", "make_log"]


def event_spec(event: str | EventSpec) -> EventSpec:
    """``event`` as an :class:`EventSpec` (a signature string is parsed)."""
    if isinstance(event, EventSpec):
        return event
    return parse_event_signature(event)


def _encode(types: list[str], values: list[Any]) -> bytes:
    # Imported on first use, as the framework's decoder does (eth-abi is slow to import).
    from eth_abi.abi import encode

    return bytes(encode(types, values))


def _fail(spec: EventSpec, param: Param, reason: object) -> ValueError:
    return ValueError(f"event {spec.name}: parameter {param.name!r} ({param.type}): {reason}")


def _topic(spec: EventSpec, param: Param, typ: AbiType, value: Any) -> str:
    """The topic of one indexed parameter (keccak256 of the value for dynamic types)."""
    if typ.is_value:
        try:
            return "0x" + _encode([param.type], [value]).hex()
        except Exception as exc:  # eth-abi's EncodingError and type errors alike
            raise _fail(spec, param, exc) from None
    if typ.kind == "string" and isinstance(value, str):
        return "0x" + bytes(keccak(value.encode())).hex()
    if typ.kind == "bytes" and isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(keccak(bytes(value))).hex()
    if (
        typ.kind in ("array", "tuple")
        and isinstance(value, (bytes, bytearray))
        and len(value) == 32
    ):
        return "0x" + bytes(value).hex()
    if typ.kind in ("array", "tuple"):
        why = "an indexed array or tuple is stored as a hash: pass its 32-byte keccak256 as bytes"
    else:
        why = f"expected {'str' if typ.kind == 'string' else 'bytes'}, got {type(value).__name__}"
    raise _fail(spec, param, why)


def encode_log(event: str | EventSpec, params: Mapping[str, Any], *, address: str) -> LogSpec:
    """The log a contract at ``address`` emits for ``event`` with these parameter values.

    The result is a :class:`LogSpec`, ready for a :class:`ScriptedChain`'s
    blocks (``ScriptedChain(1, head=10, logs={5: [encode_log(...)]})``).

    Args:
        event: A signature (``"event Transfer(address indexed from, address
            indexed to, uint256 value)"``) or an ``EventSpec``.
        params: A value for every input, by name (unnamed inputs are
            ``arg0``, ``arg1``... by position).  Values are what eth-abi
            encodes: ``int``, ``bool``, ``0x`` hex ``str`` for addresses,
            ``bytes``, ``str``, lists and tuples.  An indexed ``string`` or
            ``bytes`` goes into its topic as the keccak256 of the value, as
            Solidity does; for an indexed array or tuple pass that 32-byte
            hash itself.
        address: The emitting contract, ``0x`` + 40 hex digits.

    Raises:
        ValueError: A bad signature, a missing or unknown parameter name, or
            a value its ABI type cannot encode (the message names it).
    """
    spec = event_spec(event)
    names = [p.name for p in spec.inputs]
    missing = [n for n in names if n not in params]
    unknown = [n for n in params if n not in names]
    if missing or unknown:
        parts = [f"missing {missing}" if missing else "", f"unknown {unknown}" if unknown else ""]
        raise ValueError(
            f"event {spec.signature}: parameters {' and '.join(p for p in parts if p)} "
            f"(its inputs are {names})"
        )
    topics: list[str] = [] if spec.anonymous else [spec.topic0]
    data_params: list[Param] = []
    for param, typ in zip(spec.inputs, spec.types, strict=True):
        if param.indexed:
            topics.append(_topic(spec, param, typ, params[param.name]))
        else:
            data_params.append(param)
    try:
        data = _encode([p.type for p in data_params], [params[p.name] for p in data_params])
    except Exception:
        # Find the value at fault, for the message.
        for param in data_params:
            try:
                _encode([param.type], [params[param.name]])
            except Exception as exc:
                raise _fail(spec, param, exc) from None
        raise
    return LogSpec(address, tuple(topics), "0x" + data.hex())


def _transaction_hash(block_number: int, log_index: int) -> str:
    """A made-up transaction hash, the same for the same position."""
    seed = b"indexer.testing" + block_number.to_bytes(32, "big") + log_index.to_bytes(32, "big")
    return "0x" + bytes(keccak(seed)).hex()


def make_log(
    event: str | EventSpec,
    params: Mapping[str, Any],
    *,
    address: str,
    block_number: int,
    log_index: int = 0,
    transaction_hash: str | None = None,
    block_hash: str | None = None,
    block_timestamp: int | None = None,
) -> RawLog:
    """The log of :func:`encode_log`, placed in a block as a source delivers it.

    Args:
        event, params, address: As for :func:`encode_log`.
        block_number, log_index: Where the log is.
        transaction_hash: Default: a hash made from the position.
        block_hash, block_timestamp: Default: None (as for a source
            without them).

    Raises:
        ValueError: As for :func:`encode_log`, or a malformed hash.
    """
    log = encode_log(event, params, address=address)
    tx = (
        _transaction_hash(block_number, log_index)
        if transaction_hash is None
        else _hex(transaction_hash, 64, "transaction hash")
    )
    return RawLog(
        block_number,
        log_index,
        tx,
        log.address,
        log.topics,
        log.data,
        None if block_hash is None else _hex(block_hash, 64, "block hash"),
        block_timestamp,
    )


def make_event(
    event: str | EventSpec,
    params: Mapping[str, Any],
    *,
    contract: str,
    address: str,
    block_number: int,
    log_index: int = 0,
    chain_id: int = 1,
    transaction_hash: str | None = None,
    block_hash: str | None = None,
    block_timestamp: int | None = None,
    transaction: Mapping[str, Any] | None = None,
    block: Mapping[str, Any] | None = None,
) -> Event:
    """The :class:`~indexer.Event` a handler receives for this log.

    The log is encoded (:func:`make_log`) and decoded again with the
    framework's decoder, so ``event.params`` holds exactly what production
    handlers get: addresses lowercase, ``bytesN`` as ``bytes``, arrays as
    lists, an indexed ``string`` as its 32-byte hash.

    Args:
        event, params, address: As for :func:`encode_log`.
        contract: The contract name from indexer.yaml (handlers are chosen
            by ``(contract, event name)``).
        block_number, log_index, transaction_hash, block_hash,
            block_timestamp: As for :func:`make_log`.
        chain_id: The chain the event comes from.
        transaction: The fields ``event.transaction`` has, by key
            (``{"from": "0x...", "gas_used": 21000}``; ``from_`` works
            too); the others raise as unselected fields do.  None: none.
        block: The fields ``event.block`` has besides ``number``, ``hash``
            and ``timestamp`` (which come from ``block_number``,
            ``block_hash`` and ``block_timestamp``), e.g. ``{"miner": ...}``.

    Raises:
        ValueError: As for :func:`make_log`, or an unknown field key.
    """
    spec = event_spec(event)
    log = make_log(
        spec,
        params,
        address=address,
        block_number=block_number,
        log_index=log_index,
        transaction_hash=transaction_hash,
        block_hash=block_hash,
        block_timestamp=block_timestamp,
    )
    decoded = spec.decoder()(log.topics, log.data)
    tx = None if transaction is None else _transaction(transaction, chain_id, contract)
    blk = (
        None
        if block is None
        else _block(block, chain_id, contract, block_number, log.block_hash, block_timestamp)
    )
    return Event(
        decoded,
        contract,
        spec.name,
        log.address,
        chain_id,
        block_number,
        log_index,
        log.transaction_hash,
        log.block_hash,
        block_timestamp,
        tx,  # type: ignore[arg-type]  # None reads as nothing selected (see Event)
        blk,  # type: ignore[arg-type]
    )


def _attributes(
    values: Mapping[str, Any], valid: Sequence[str], what: str
) -> list[tuple[str, Any]]:
    out = []
    for key, value in values.items():
        name = "from" if key == "from_" else key
        if name not in valid:
            raise ValueError(f"{key!r} is not a {what} field; the fields are: {', '.join(valid)}")
        out.append((attribute(name), value))
    return out


def _transaction(values: Mapping[str, Any], chain_id: int, contract: str) -> Transaction:
    where = f"event.transaction@of chain {chain_id} (or of its contract {contract})"
    return make_transaction(where, _attributes(values, TRANSACTION_FIELDS, "transaction"))


def _block(
    values: Mapping[str, Any],
    chain_id: int,
    contract: str,
    number: int,
    block_hash: str | None,
    timestamp: int | None,
) -> Block:
    where = f"event.block@of chain {chain_id} (or of its contract {contract})"
    known: list[tuple[str, Any]] = [("number", number)]
    known += [(k, v) for k, v in (("hash", block_hash), ("timestamp", timestamp)) if v is not None]
    return _make_block(where, known + _attributes(values, BLOCK_FIELDS, "block"))


def make_block(
    number: int,
    *,
    chain_id: int = 1,
    hash: str | None = None,
    parent_hash: str | None = None,
    timestamp: int | None = None,
    fields: Mapping[str, Any] | None = None,
) -> Block:
    """The :class:`~indexer.Block` a block handler receives at block ``number``.

    Args:
        number: The block number.
        chain_id: The chain, for the message of an unselected field.
        hash, parent_hash: Lower-case ``0x`` hex; by default made up from
            the number (``0x`` + 64 hex digits of it, and of ``number - 1``).
        timestamp: Seconds; by default ``1_700_000_000 + 12 * number``.
        fields: The selected block fields besides those four, by key
            (``{"miner": "0x...", "base_fee_per_gas": 7}``); the others raise
            as unselected fields do.

    Raises:
        ValueError: An unknown field key.
    """
    known: list[tuple[str, Any]] = [
        ("number", number),
        ("hash", hash if hash is not None else f"0x{number:064x}"),
        ("parent_hash", parent_hash if parent_hash is not None else f"0x{max(0, number - 1):064x}"),
        ("timestamp", timestamp if timestamp is not None else 1_700_000_000 + 12 * number),
    ]
    where = f"block@of chain {chain_id}"
    return _make_block(where, known + _attributes(fields or {}, BLOCK_FIELDS, "block"))
