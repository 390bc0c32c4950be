"""Event ABIs: parse them, and decode logs with them fast.

An :class:`EventSpec` describes one event.  It comes from a human-readable
signature (:func:`parse_event_signature`) or from ABI JSON
(:func:`events_from_abi`).  ``spec.decoder()`` gives a function
``decode(topics, data) -> dict`` built for that one event.

Decoded values follow one convention, relied on by handlers and entity
code: ``uintN``/``intN`` -> ``int`` (``intN`` signed), ``address`` ->
lowercase ``0x`` + 40 hex digits ``str``, ``bool`` -> ``bool``,
``bytes``/``bytesN`` -> ``bytes``, ``string`` -> ``str``, arrays -> ``list``,
tuples -> ``tuple``.  An indexed parameter of a dynamic type (``string``,
``bytes``, arrays, tuples) is stored in its topic as a keccak hash, so it
comes out as the 32 topic bytes.

Speed: the decoder runs once per event.  For each spec we generate (with
``exec``) a small function without loops that reads static values straight
from the hex text: ``int(word, 16)`` for integers, slices for addresses.
The hex text is never converted to bytes on that path.  Data holding dynamic
types goes through ``eth_abi.decode``.  The fast function checks what a
strict ABI decoder checks: topic count, topic0, exact lengths, zero padding
of addresses and ``bytesN``, ``bool`` being 0 or 1, and integer ranges
(sign extension included).  When any check fails it hands the log to a slow
reference decoder.  That decoder works on bytes and eth-abi and checks every
character.  It raises :class:`~indexer.DecodeError` with the exact reason,
or it returns the values when the fast path only refused an unusual but
valid spelling, such as an uppercase topic0.

Trust boundary: on the fast path, ``topics`` and ``data`` are taken to be
``0x``-prefixed hex text, as :class:`~indexer.sources.RawLog` promises
(sources make them with ``bytes.hex()`` or take them from a node's JSON).
The fast path checks lengths and padding, not the class of every
character.  A non-hex character in a number still raises ``DecodeError``,
because ``int()`` refuses it.  The characters of an address are copied
after ``.lower()`` without being parsed.  Checking each character costs
about 20% of the decoder's time, and sources already guarantee it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from eth_hash.auto import keccak

from ._errors import DecodeError

__all__ = ["EventSpec", "Param", "events_from_abi", "parse_event_signature"]


def abi_decode(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    """``eth_abi.decode``, imported on first use.

    eth-abi (with eth-utils) takes about half a second to import; events
    with only static types never need it, and startup time is resume time.
    Its DecodingError comes out as ValueError, which the generated fast
    path already treats as "defer to the reference decoder".
    """
    from eth_abi.abi import decode
    from eth_abi.exceptions import DecodingError

    try:
        return tuple(decode(list(types), data))
    except DecodingError as exc:
        raise ValueError(str(exc)) from exc


Decoder = Callable[[tuple[str, ...], str], dict[str, Any]]


# --------------------------------------------------------------------------
# Public data model
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """One event input: its name, canonical ABI type and whether it is indexed."""

    name: str
    type: str
    indexed: bool


@dataclass(frozen=True)
class EventSpec:
    """One event ABI, for example ``Transfer(address indexed, address indexed, uint256)``.

    Construction checks the spec and normalises it.  Every type is parsed and
    replaced by its canonical spelling (``uint`` -> ``uint256``).  Unnamed
    inputs are named ``arg0``, ``arg1``... by position.  Duplicate names and
    too many indexed inputs raise ``ValueError``.
    """

    name: str
    inputs: tuple[Param, ...]
    anonymous: bool = False
    # Parsed types, derived in __post_init__; not part of equality or repr.
    _types: tuple[_Type, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _IDENT_RE.fullmatch(self.name):
            raise ValueError(f"event name {self.name!r} is not an identifier")
        types: list[_Type] = []
        params: list[Param] = []
        seen: set[str] = set()
        for position, param in enumerate(self.inputs):
            try:
                typ = _parse_type_text(param.type)
            except ValueError as exc:
                raise ValueError(
                    f"event {self.name}: input {position} ({param.name or 'unnamed'}): {exc}"
                ) from None
            name = param.name or f"arg{position}"
            if name in seen:
                raise ValueError(
                    f"event {self.name}: two inputs are named {name!r}; "
                    "decoded parameters are keyed by name, so names must be unique"
                )
            seen.add(name)
            types.append(typ)
            params.append(Param(name, typ.canonical, bool(param.indexed)))
        n_indexed = sum(p.indexed for p in params)
        limit = 4 if self.anonymous else 3
        if n_indexed > limit:
            raise ValueError(
                f"event {self.name} has {n_indexed} indexed inputs; "
                f"{'an anonymous' if self.anonymous else 'an'} event can have at most {limit}"
            )
        object.__setattr__(self, "inputs", tuple(params))
        object.__setattr__(self, "_types", tuple(types))

    @cached_property
    def signature(self) -> str:
        """The canonical signature, e.g. ``Transfer(address,address,uint256)``."""
        return f"{self.name}({','.join(p.type for p in self.inputs)})"

    @cached_property
    def topic0(self) -> str:
        """keccak256 of :attr:`signature`, lowercase ``0x`` hex (unused by anonymous events)."""
        return "0x" + keccak(self.signature.encode()).hex()

    @property
    def topic_count(self) -> int:
        """How many topics a matching log has: topic0 (unless anonymous) plus one per indexed input."""
        return (0 if self.anonymous else 1) + sum(p.indexed for p in self.inputs)

    def decoder(self) -> Decoder:
        """Return the compiled ``decode(topics, data) -> {name: value}`` function of this event.

        It raises :class:`~indexer.DecodeError` naming the reason when the log
        does not fit the event.  The reason can be a wrong topic count, a wrong
        topic0, data of the wrong length, non-zero padding, or a value out of
        range.  The function is built once per spec and cached.
        """
        return self._compiled

    @cached_property
    def _compiled(self) -> Decoder:
        return _compile(self)

    def __getstate__(self) -> dict[str, Any]:
        # The generated decoder cannot be pickled; a copy rebuilds it on first use.
        state = dict(self.__dict__)
        state.pop("_compiled", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __str__(self) -> str:
        parts = [f"{p.type}{' indexed' if p.indexed else ''} {p.name}" for p in self.inputs]
        return f"event {self.name}({', '.join(parts)}){' anonymous' if self.anonymous else ''}"


# --------------------------------------------------------------------------
# Type model
# --------------------------------------------------------------------------

_VALUE_KINDS = frozenset({"uint", "int", "address", "bool", "bytesN"})


@dataclass(frozen=True, slots=True)
class _Type:
    """A parsed ABI type.

    ``kind`` is one of: uint, int (``size`` = bits), bytesN (``size`` = bytes),
    address, bool, bytes, string, array (``elem``, ``length`` None when
    dynamic), tuple (``comps``).  ``dynamic`` and ``words`` are derived once
    at construction: size checks walk them for every array element.
    """

    kind: str
    size: int = 0
    elem: _Type | None = None
    length: int | None = None
    comps: tuple[_Type, ...] = ()
    #: The encoding has a variable length (its head is an offset).
    dynamic: bool = field(init=False, compare=False, repr=False)
    #: Head size in 32-byte words (1 for dynamic types: the offset).
    words: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        dynamic = False
        words = 1
        if self.kind in ("bytes", "string"):
            dynamic = True
        elif self.kind == "array":
            assert self.elem is not None
            dynamic = self.length is None or self.elem.dynamic
            if not dynamic:
                assert self.length is not None
                words = self.length * self.elem.words
        elif self.kind == "tuple":
            dynamic = any(c.dynamic for c in self.comps)
            if not dynamic:
                words = sum(c.words for c in self.comps)
        object.__setattr__(self, "dynamic", dynamic)
        object.__setattr__(self, "words", words)

    @property
    def canonical(self) -> str:
        """The canonical type string used in signatures."""
        if self.kind in ("uint", "int"):
            return f"{self.kind}{self.size}"
        if self.kind == "bytesN":
            return f"bytes{self.size}"
        if self.kind == "array":
            assert self.elem is not None
            return f"{self.elem.canonical}[{'' if self.length is None else self.length}]"
        if self.kind == "tuple":
            return f"({','.join(c.canonical for c in self.comps)})"
        return self.kind

    @property
    def is_value(self) -> bool:
        """True for elementary static types, the ones stored directly in a topic."""
        return self.kind in _VALUE_KINDS


# --------------------------------------------------------------------------
# Parsing human-readable signatures and type strings
# --------------------------------------------------------------------------

_IDENT_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_TOKEN_RE = re.compile(r"\s*(?:([A-Za-z_$][A-Za-z0-9_$]*)|([0-9]+)|([()\[\],;]))")
_INT_RE = re.compile(r"(u?int)([0-9]*)")
_BYTES_RE = re.compile(r"bytes([0-9]+)")
_FIXED_RE = re.compile(r"u?fixed([0-9]+x[0-9]+)?")


class _Parser:
    """A small recursive-descent parser over one signature or type string."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, value, column)
        pos = 0
        while True:
            m = _TOKEN_RE.match(text, pos)
            if m is None:
                rest = text[pos:]
                if rest.strip() == "":
                    break
                col = pos + len(rest) - len(rest.lstrip()) + 1
                raise self._error(f"unexpected character {text[col - 1]!r}", col)
            kind = "ident" if m.group(1) else "number" if m.group(2) else "punct"
            self.tokens.append((kind, m.group(m.lastindex or 0), m.start(m.lastindex or 0) + 1))
            pos = m.end()
        self.i = 0

    def _error(self, reason: str, column: int | None = None) -> ValueError:
        if column is None:
            column = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text) + 1
        return ValueError(f"{reason} at column {column} of {self.text!r}")

    def peek(self, offset: int = 0) -> tuple[str, str, int] | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise self._error("unexpected end")
        self.i += 1
        return tok

    def expect(self, value: str, what: str) -> None:
        tok = self.peek()
        if tok is None or tok[0] != "punct" or tok[1] != value:
            found = "the end" if tok is None else repr(tok[1])
            raise self._error(f"expected {what}, found {found}")
        self.i += 1

    def at_punct(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "punct" and tok[1] == value

    def at_end(self) -> bool:
        return self.i >= len(self.tokens)

    # type := ( "tuple"? "(" components ")" | elementary ) ( "[" number? "]" )*
    def parse_type(self) -> _Type:
        tok = self.peek()
        if tok is None:
            raise self._error("expected a type, found the end")
        if tok[0] == "ident" and tok[1] == "tuple" and self._punct_at(1, "("):
            self.i += 1
            tok = self.peek()
            assert tok is not None
        if tok[0] == "punct" and tok[1] == "(":
            self.i += 1
            comps: list[_Type] = []
            if not self.at_punct(")"):
                while True:
                    comps.append(self.parse_type())
                    # A component may carry a name ("(address owner, uint256 amount)").
                    nxt = self.peek()
                    if nxt is not None and nxt[0] == "ident":
                        if nxt[1] == "indexed":
                            raise self._error("'indexed' is not allowed inside a tuple")
                        self.i += 1
                    if self.at_punct(","):
                        self.i += 1
                        continue
                    break
            self.expect(")", "',' or ')' in tuple type")
            if not comps:
                raise self._error("a tuple type needs at least one component", tok[2])
            typ = _Type("tuple", comps=tuple(comps))
        elif tok[0] == "ident":
            self.i += 1
            typ = self._elementary(tok[1], tok[2])
        else:
            raise self._error(f"expected a type, found {tok[1]!r}")
        while self.at_punct("["):
            self.i += 1
            length: int | None = None
            nxt = self.peek()
            if nxt is not None and nxt[0] == "number":
                self.i += 1
                if nxt[1] != "0" and nxt[1].startswith("0"):
                    raise self._error(f"array length {nxt[1]} has a leading zero", nxt[2])
                length = int(nxt[1])
                if length == 0:
                    raise self._error("a fixed-size array needs a length of at least 1", nxt[2])
            self.expect("]", "']' closing the array type")
            typ = _Type("array", elem=typ, length=length)
        return typ

    def _punct_at(self, offset: int, value: str) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok[0] == "punct" and tok[1] == value

    def _elementary(self, name: str, column: int) -> _Type:
        if name in ("address", "bool", "string", "bytes"):
            if name == "address":
                # Solidity sources may say "address payable"; the ABI type is address.
                nxt = self.peek()
                if nxt is not None and nxt[0] == "ident" and nxt[1] == "payable":
                    self.i += 1
            return _Type(name)
        if name == "byte":  # old Solidity alias
            return _Type("bytesN", 1)
        m = _INT_RE.fullmatch(name)
        if m:
            digits = m.group(2)
            bits = int(digits) if digits else 256
            if (digits.startswith("0")) or not (8 <= bits <= 256 and bits % 8 == 0):
                raise self._error(
                    f"unknown type {name!r} ({m.group(1)}N needs N a multiple of 8 from 8 to 256)",
                    column,
                )
            return _Type(m.group(1), bits)
        m = _BYTES_RE.fullmatch(name)
        if m:
            size = int(m.group(1))
            if m.group(1).startswith("0") or not 1 <= size <= 32:
                raise self._error(f"unknown type {name!r} (bytesN needs N from 1 to 32)", column)
            return _Type("bytesN", size)
        if _FIXED_RE.fullmatch(name) or name == "function":
            raise self._error(f"type {name!r} is not supported by indexer", column)
        raise self._error(f"unknown type {name!r}", column)

    # param := type "indexed"? name?
    def parse_param(self, position: int) -> Param:
        typ = self.parse_type()
        indexed = False
        name = ""
        nxt = self.peek()
        if nxt is not None and nxt[0] == "ident" and nxt[1] == "indexed":
            indexed = True
            self.i += 1
            nxt = self.peek()
        if nxt is not None and nxt[0] == "ident":
            if nxt[1] == "indexed":
                raise self._error("'indexed' given twice")
            name = nxt[1]
            self.i += 1
        return Param(name or f"arg{position}", typ.canonical, indexed)

    # event := "event"? name "(" params? ")" "anonymous"? ";"?
    def parse_event(self) -> EventSpec:
        tok = self.peek()
        if tok is not None and tok[0] == "ident" and tok[1] == "event":
            self.i += 1  # a keyword in Solidity, so never the event's name
        tok = self.peek()
        if tok is None or tok[0] != "ident":
            raise self._error("expected the event name")
        name = tok[1]
        self.i += 1
        self.expect("(", "'(' after the event name")
        params: list[Param] = []
        if not self.at_punct(")"):
            while True:
                params.append(self.parse_param(len(params)))
                if self.at_punct(","):
                    self.i += 1
                    continue
                break
        self.expect(")", "',' or ')' after a parameter")
        anonymous = False
        nxt = self.peek()
        if nxt is not None and nxt[0] == "ident" and nxt[1] == "anonymous":
            anonymous = True
            self.i += 1
        if self.at_punct(";"):
            self.i += 1
        if not self.at_end():
            raise self._error(f"unexpected {self.take()[1]!r} after the parameter list")
        try:
            return EventSpec(name, tuple(params), anonymous)
        except ValueError as exc:
            raise ValueError(f"{exc} (in {self.text!r})") from None


def _parse_type_text(text: str) -> _Type:
    parser = _Parser(text)
    typ = parser.parse_type()
    if not parser.at_end():
        raise parser._error(f"unexpected {parser.take()[1]!r} after the type")
    return typ


def parse_event_signature(text: str) -> EventSpec:
    """Parse a human-readable event signature into an :class:`EventSpec`.

    Accepts ``event Transfer(address indexed from, address indexed to, uint256 value)``,
    with or without the ``event`` keyword, with an ``anonymous`` suffix and a
    trailing ``;``.  Tuple types may be written ``(address a, uint256 b)`` or
    ``tuple(address,uint256)``.  Arrays are written ``uint256[]`` or
    ``bytes32[3]``.  ``uint``/``int`` stand for ``uint256``/``int256``.

    Raises ``ValueError`` with the reason and the column on bad syntax or an
    unknown type.  The caller wraps it in a ``ConfigError`` that names the file
    and key.
    """
    if not isinstance(text, str):
        raise ValueError(f"an event signature must be a string, not {type(text).__name__}")
    return _Parser(text).parse_event()


def _abi_json_type(entry: Any, where: str) -> str:
    """The canonical type string of one ABI JSON input, expanding ``tuple`` with its components."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
    typ = entry.get("type")
    if not isinstance(typ, str):
        raise ValueError(f"{where}: missing or non-string 'type'")
    if typ.startswith("tuple"):
        comps = entry.get("components")
        if not isinstance(comps, list) or not comps:
            raise ValueError(f"{where}: type {typ!r} needs a non-empty 'components' list")
        inner = ",".join(_abi_json_type(c, f"{where}.components[{i}]") for i, c in enumerate(comps))
        typ = f"({inner}){typ[len('tuple') :]}"
    try:
        return _parse_type_text(typ).canonical
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def events_from_abi(abi: list[dict[str, Any]]) -> list[EventSpec]:
    """Build an :class:`EventSpec` for every ``"type": "event"`` entry of ABI JSON.

    Handles tuple ``components`` (nested too) and ``anonymous``.  Ignores the
    other entries (functions, errors, constructor...).  Raises ``ValueError``
    naming the entry when an event entry is malformed.
    """
    if not isinstance(abi, list):
        raise ValueError(f"an ABI must be a JSON list, not {type(abi).__name__}")
    specs: list[EventSpec] = []
    for index, entry in enumerate(abi):
        if not isinstance(entry, dict) or entry.get("type") != "event":
            continue
        name = entry.get("name")
        where = f"ABI entry {index} (event {name})"
        if not isinstance(name, str):
            raise ValueError(f"ABI entry {index}: event without a string 'name'")
        raw_inputs = entry.get("inputs", [])
        if not isinstance(raw_inputs, list):
            raise ValueError(f"{where}: 'inputs' must be a list")
        params: list[Param] = []
        for position, raw in enumerate(raw_inputs):
            typ = _abi_json_type(raw, f"{where} input {position}")
            pname = raw.get("name") or ""
            if not isinstance(pname, str):
                raise ValueError(f"{where} input {position}: 'name' must be a string")
            params.append(Param(pname, typ, bool(raw.get("indexed", False))))
        try:
            specs.append(EventSpec(name, tuple(params), bool(entry.get("anonymous", False))))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return specs


# --------------------------------------------------------------------------
# Reference (slow, precise) decoding
# --------------------------------------------------------------------------

_HEX_RE = re.compile(r"0[xX]([0-9a-fA-F]*)")


def _hex_bytes(value: object, what: str) -> bytes:
    """Strictly convert ``0x`` hex text to bytes, or raise DecodeError saying why."""
    if not isinstance(value, str):
        raise DecodeError(f"{what} is a {type(value).__name__}, not a hex string")
    m = _HEX_RE.fullmatch(value)
    if m is None:
        raise DecodeError(f"{what} is not 0x-prefixed hex text: {_short(value)}")
    digits = m.group(1)
    if len(digits) % 2:
        raise DecodeError(f"{what} has an odd number of hex digits ({len(digits)})")
    return bytes.fromhex(digits)


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _converter(typ: _Type) -> Callable[[Any], Any] | None:
    """Map eth-abi's output for ``typ`` to our convention (None when it already fits)."""
    if typ.kind == "address":
        return str.lower
    if typ.kind == "array":
        assert typ.elem is not None
        inner = _converter(typ.elem)
        if inner is None:
            return list
        conv = inner
        return lambda v: [conv(x) for x in v]
    if typ.kind == "tuple":
        convs = [_converter(c) for c in typ.comps]
        if all(c is None for c in convs):
            return None
        pairs = [(c if c is not None else _identity) for c in convs]
        return lambda v: tuple(c(x) for c, x in zip(pairs, v, strict=True))
    return None


def _identity(value: Any) -> Any:
    return value


def _encoded_size(typ: _Type, value: Any) -> int:
    """Bytes the canonical encoding of ``value`` takes in its tail (dynamic) or head (static)."""
    if not typ.dynamic:
        return 32 * typ.words
    if typ.kind == "bytes":
        return 32 + -(-len(value) // 32) * 32
    if typ.kind == "string":
        return 32 + -(-len(value.encode("utf-8")) // 32) * 32
    if typ.kind == "array":
        assert typ.elem is not None
        elem = typ.elem
        size = 0 if typ.length is not None else 32  # the length word
        for item in value:
            size += 32 + _encoded_size(elem, item) if elem.dynamic else 32 * elem.words
        return size
    # dynamic tuple
    return sum(
        32 + _encoded_size(c, v) if c.dynamic else 32 * c.words
        for c, v in zip(typ.comps, value, strict=True)
    )


class _Layout:
    """Everything about a spec that both decoding paths need, computed once."""

    def __init__(self, spec: EventSpec) -> None:
        self.spec = spec
        self.topic0 = spec.topic0
        self.topic_count = spec.topic_count
        self.indexed = [(p, t) for p, t in zip(spec.inputs, spec._types, strict=True) if p.indexed]
        self.body = [(p, t) for p, t in zip(spec.inputs, spec._types, strict=True) if not p.indexed]
        self.body_types = [t.canonical for _, t in self.body]
        self.body_tuple = _Type("tuple", comps=tuple(t for _, t in self.body))
        self.body_static = not self.body_tuple.dynamic
        self.body_words = self.body_tuple.words if self.body else 0
        self.body_convs = [_converter(t) for _, t in self.body]
        self.topic_convs = [_converter(t) for _, t in self.indexed]

    def describe_body(self) -> str:
        return ", ".join(f"{t.canonical} {p.name}" for p, t in self.body) or "nothing"

    def decode_body(self, data: str) -> list[Any]:
        """Decode the non-indexed values from ``data`` hex with eth-abi, strictly."""
        raw = _hex_bytes(data, "data")
        if not self.body:
            if raw:
                raise DecodeError(
                    f"data should be empty ({self.spec.name} has no non-indexed inputs), "
                    f"got {len(raw)} bytes"
                )
            return []
        if self.body_static:
            expected = 32 * self.body_words
            if len(raw) != expected:
                raise DecodeError(
                    f"data is {len(raw)} bytes, but {self.spec.name}'s non-indexed inputs "
                    f"({self.describe_body()}) take exactly {expected}"
                )
            # Decode one input at a time so an error names the input.
            values: list[Any] = []
            offset = 0
            for (param, typ), conv in zip(self.body, self.body_convs, strict=True):
                size = 32 * typ.words
                chunk = raw[offset : offset + size]
                try:
                    (value,) = abi_decode([typ.canonical], chunk)
                except Exception as exc:
                    raise DecodeError(
                        f"data bytes {offset}..{offset + size - 1} ({typ.canonical} {param.name}): {exc}"
                    ) from None
                values.append(conv(value) if conv is not None else value)
                offset += size
            return values
        try:
            decoded = abi_decode(self.body_types, raw)
        except Exception as exc:
            raise DecodeError(
                f"data does not decode as ({self.describe_body()}): {type(exc).__name__}: {exc}"
            ) from None
        expected = _encoded_size(self.body_tuple, decoded)
        if len(raw) != expected:
            raise DecodeError(
                f"data is {len(raw)} bytes, but the ABI encoding of its decoded values "
                f"({self.describe_body()}) is {expected} bytes"
            )
        return [
            conv(v) if conv is not None else v
            for v, conv in zip(decoded, self.body_convs, strict=True)
        ]

    def decode_topic(self, position: int, topic: object) -> Any:
        """Decode indexed input ``position`` from its topic, strictly."""
        param, typ = self.indexed[position]
        topic_no = position + (0 if self.spec.anonymous else 1)
        what = f"topic {topic_no} ({typ.canonical} indexed {param.name})"
        raw = _hex_bytes(topic, what)
        if len(raw) != 32:
            raise DecodeError(f"{what} is {len(raw)} bytes, not 32")
        if not typ.is_value:
            return raw  # a keccak hash of the value: keep the 32 bytes
        try:
            (value,) = abi_decode([typ.canonical], raw)
        except Exception as exc:
            raise DecodeError(f"{what}: {exc}") from None
        conv = self.topic_convs[position]
        return conv(value) if conv is not None else value

    def reference_decode(self, topics: Sequence[str], data: str) -> dict[str, Any]:
        """Decode with full checks; raise DecodeError with the first problem found."""
        spec = self.spec
        if not isinstance(topics, (tuple, list)):
            raise DecodeError(f"topics is a {type(topics).__name__}, not a tuple of hex strings")
        if len(topics) != self.topic_count:
            raise DecodeError(
                f"expected {self.topic_count} topics for {spec.signature} "
                f"({'' if spec.anonymous else 'topic0 and '}{len(self.indexed)} indexed), "
                f"got {len(topics)}"
            )
        first = 0
        if not spec.anonymous:
            t0 = topics[0]
            if not isinstance(t0, str) or t0.lower() != self.topic0:
                raise DecodeError(
                    f"topic0 {t0!r} is not the topic0 of {spec.signature} ({self.topic0})"
                )
            first = 1
        out: dict[str, Any] = {}
        by_name: dict[str, Any] = {}
        for position in range(len(self.indexed)):
            by_name[self.indexed[position][0].name] = self.decode_topic(
                position, topics[first + position]
            )
        body_values = self.decode_body(data)
        body_iter: Iterator[Any] = iter(body_values)
        for param in spec.inputs:
            out[param.name] = by_name[param.name] if param.indexed else next(body_iter)
        return out


# --------------------------------------------------------------------------
# Fast-path code generation
# --------------------------------------------------------------------------

# The fast path gives up (and defers to the reference decoder) on these.
_FAST_FAILURES: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
)

# Unrolling a huge static array into straight-line code would bloat the
# function for no gain; such events use eth-abi for their data instead.
_MAX_UNROLLED_WORDS = 64

_Z = "0" * 64


class _Gen:
    """Emit the body of one generated decoder as straight-line code."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {}
        self.counter = 0

    def var(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    def const(self, value: Any) -> str:
        for name, known in self.ns.items():
            if type(known) is type(value) and known == value:
                return name
        name = f"K{len(self.ns)}"
        self.ns[name] = value
        return name

    def bail(self, condition: str) -> None:
        self.lines.append(f"if {condition}:")
        self.lines.append("    return _ref(topics, data)")

    def word_value(self, typ: _Type, src: str, start: int, whole: bool) -> str:
        """Code for an elementary static value in the 64 hex digits src[start:start+64].

        ``whole`` says ``src`` is exactly ``0x`` + those 64 digits (a topic, or
        one-word data), so an address check can cover the ``0x`` for free.
        Integers are always parsed from a 64-digit slice: that bounds the
        value to 256 bits by construction, whatever the string holds.
        """
        end = start + 64
        word = f"{src}[{start}:{end}]"
        v = self.var()
        kind, size = typ.kind, typ.size
        if kind == "uint":
            self.lines.append(f"{v} = int({word}, 16)")
            # The int() of 64 hex digits always fits 256 bits; narrower types
            # must have zero high bits.
            if size < 256:
                self.bail(f"{v} >> {size}")
        elif kind == "int":
            self.lines.append(f"{v} = int({word}, 16)")
            self.lines.append(f"if {v} >> 255:")
            self.lines.append(f"    {v} -= {1 << 256}")
            if size < 256:
                # Inside the range iff the sign extension over the padding is consistent.
                self.bail(f"not {-(1 << (size - 1))} <= {v} < {1 << (size - 1)}")
        elif kind == "address":
            if whole:
                # A topic: compare the "0x" too, for free (same slice cost).
                self.bail(f"{src}[:26] != {self.const('0x' + _Z[:24])}")
            else:
                self.bail(f"{src}[{start}:{start + 24}] != {self.const(_Z[:24])}")
            self.lines.append(f'{v} = "0x" + {src}[{start + 24}:{end}].lower()')
        elif kind == "bool":
            bools = self.const({_Z: False, _Z[:-1] + "1": True})
            self.lines.append(f"{v} = {bools}.get({word})")
            self.bail(f"{v} is None")
        elif kind == "bytesN":
            if size < 32:
                self.bail(f"{src}[{start + 2 * size}:{end}] != {self.const(_Z[: 64 - 2 * size])}")
                self.lines.append(f"{v} = _fromhex({src}[{start}:{start + 2 * size}])")
            else:
                self.lines.append(f"{v} = _fromhex({word})")
        else:  # pragma: no cover - callers only pass value types
            raise AssertionError(kind)
        return v

    def static_value(self, typ: _Type, start: int, whole: bool = False) -> tuple[str, int]:
        """Code for a static (possibly nested) value at hex offset ``start`` of data.

        ``whole``: the data is exactly this one word, so an address check covers the ``0x``.
        """
        if typ.is_value:
            return self.word_value(typ, "data", start, whole), start + 64
        if typ.kind == "array":
            assert typ.elem is not None
            assert typ.length is not None
            items = []
            for _ in range(typ.length):
                expr, start = self.static_value(typ.elem, start)
                items.append(expr)
            return f"[{', '.join(items)}]", start
        assert typ.kind == "tuple"
        items = []
        for comp in typ.comps:
            expr, start = self.static_value(comp, start)
            items.append(expr)
        return f"({', '.join(items)}{',' if len(items) == 1 else ''})", start


def _compile(spec: EventSpec) -> Decoder:
    """Generate, exec and return the decoder function of ``spec``."""
    layout = _Layout(spec)
    gen = _Gen()
    n_topics = layout.topic_count
    body_words = layout.body_words
    unroll = layout.body_static and body_words <= _MAX_UNROLLED_WORDS

    # Shape checks first: they are what tells an ERC721 Transfer from an ERC20 one.
    shape = [f"len(topics) != {n_topics}"]
    if unroll:
        shape.append(f"len(data) != {2 + 64 * body_words}")
    if not spec.anonymous:
        shape.append(f"topics[0] != {gen.const(layout.topic0)}")
    gen.bail(" or ".join(shape))

    exprs: dict[str, str] = {}
    first = 0 if spec.anonymous else 1
    topic_vars = [f"t{first + i}" for i in range(len(layout.indexed))]
    if topic_vars:
        targets = ([] if spec.anonymous else ["_"]) + topic_vars
        gen.lines.append(f"{', '.join(targets)}{',' if len(targets) == 1 else ''} = topics")
        gen.bail(" or ".join(f"len({t}) != 66" for t in topic_vars))
    for (param, typ), tvar in zip(layout.indexed, topic_vars, strict=True):
        if typ.is_value:
            exprs[param.name] = gen.word_value(typ, tvar, 2, True)
        else:
            v = gen.var()
            gen.lines.append(f"{v} = _fromhex({tvar}[2:])")
            exprs[param.name] = v

    if layout.body:
        if unroll:
            start = 2
            for param, typ in layout.body:
                exprs[param.name], start = gen.static_value(typ, start, body_words == 1)
        else:
            body_vars = [gen.var() for _ in layout.body]
            gen.ns["_body"] = layout.decode_body
            gen.lines.append(
                f"{', '.join(body_vars)}{',' if len(body_vars) == 1 else ''} = _body(data)"
            )
            for (param, _), v in zip(layout.body, body_vars, strict=True):
                exprs[param.name] = v
    items = ", ".join(f"{p.name!r}: {exprs[p.name]}" for p in spec.inputs)
    gen.lines.append(f"return {{{items}}}")

    namespace: dict[str, Any] = {
        "_ref": layout.reference_decode,
        "_fromhex": bytes.fromhex,
        "_FAIL": _FAST_FAILURES,
        **gen.ns,
    }
    # Constants come in as keyword-only defaults: locals are read faster than globals.
    bound = ", ".join(f"{name}={name}" for name in namespace)
    src_lines = [f"def decode(topics, data, *, {bound}):", "    try:"]
    src_lines += [f"        {line}" for line in gen.lines]
    src_lines += ["    except _FAIL:", "        pass", "    return _ref(topics, data)"]
    source = "\n".join(src_lines) + "\n"
    code = compile(source, f"<indexer decoder for {spec.signature}>", "exec")
    exec(code, namespace)
    decode: Decoder = namespace["decode"]
    decode.__doc__ = f"Decode a {spec.signature} log: (topics, data hex) -> params dict."
    decode.__qualname__ = f"decode_{spec.name}"
    decode._source = source  # type: ignore[attr-defined]  # kept for debugging
    return decode
