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
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from eth_hash.auto import keccak

__all__ = ["EventSpec", "Param", "events_from_abi", "parse_event_signature"]


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
        # Imported here: the decoder module builds on this one.
        from ._abi_decode import compile_decoder

        return compile_decoder(self)

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
