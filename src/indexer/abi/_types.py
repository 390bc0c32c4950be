"""The ABI type model (:class:`AbiType`) and the grammar of type strings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["IDENT_RE", "AbiType", "TypeParser", "parse_type"]

_VALUE_KINDS = frozenset({"uint", "int", "address", "bool", "bytesN"})


@dataclass(frozen=True, slots=True)
class AbiType:
    """A parsed ABI type.

    ``kind`` is one of: uint, int (``size`` = bits), bytesN (``size`` = bytes),
    address, bool, bytes, string, array (``elem``, ``length`` None when
    dynamic), tuple (``comps``).  ``dynamic`` and ``words`` are derived once
    at construction: size checks walk them for every array element.
    """

    kind: str
    size: int = 0
    elem: AbiType | None = None
    length: int | None = None
    comps: tuple[AbiType, ...] = ()
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


# An identifier as Solidity spells it (event and parameter names).
IDENT_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_TOKEN_RE = re.compile(r"\s*(?:([A-Za-z_$][A-Za-z0-9_$]*)|([0-9]+)|([()\[\],;]))")
_INT_RE = re.compile(r"(u?int)([0-9]*)")
_BYTES_RE = re.compile(r"bytes([0-9]+)")
_FIXED_RE = re.compile(r"u?fixed([0-9]+x[0-9]+)?")


class TypeParser:
    """A small recursive-descent parser over one type string (tokens, then ``parse_type``).

    ``_parse.py`` extends it to whole event signatures.
    """

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
                raise self.error(f"unexpected character {text[col - 1]!r}", col)
            kind = "ident" if m.group(1) else "number" if m.group(2) else "punct"
            self.tokens.append((kind, m.group(m.lastindex or 0), m.start(m.lastindex or 0) + 1))
            pos = m.end()
        self.i = 0

    def error(self, reason: str, column: int | None = None) -> ValueError:
        if column is None:
            column = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text) + 1
        return ValueError(f"{reason} at column {column} of {self.text!r}")

    def peek(self, offset: int = 0) -> tuple[str, str, int] | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end")
        self.i += 1
        return tok

    def expect(self, value: str, what: str) -> None:
        tok = self.peek()
        if tok is None or tok[0] != "punct" or tok[1] != value:
            found = "the end" if tok is None else repr(tok[1])
            raise self.error(f"expected {what}, found {found}")
        self.i += 1

    def at_punct(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "punct" and tok[1] == value

    def at_end(self) -> bool:
        return self.i >= len(self.tokens)

    # type := ( "tuple"? "(" components ")" | elementary ) ( "[" number? "]" )*
    def parse_type(self) -> AbiType:
        tok = self.peek()
        if tok is None:
            raise self.error("expected a type, found the end")
        if tok[0] == "ident" and tok[1] == "tuple" and self._punct_at(1, "("):
            self.i += 1
            tok = self.peek()
            assert tok is not None
        if tok[0] == "punct" and tok[1] == "(":
            self.i += 1
            comps: list[AbiType] = []
            if not self.at_punct(")"):
                while True:
                    comps.append(self.parse_type())
                    # A component may carry a name ("(address owner, uint256 amount)").
                    nxt = self.peek()
                    if nxt is not None and nxt[0] == "ident":
                        if nxt[1] == "indexed":
                            raise self.error("'indexed' is not allowed inside a tuple")
                        self.i += 1
                    if self.at_punct(","):
                        self.i += 1
                        continue
                    break
            self.expect(")", "',' or ')' in tuple type")
            if not comps:
                raise self.error("a tuple type needs at least one component", tok[2])
            typ = AbiType("tuple", comps=tuple(comps))
        elif tok[0] == "ident":
            self.i += 1
            typ = self._elementary(tok[1], tok[2])
        else:
            raise self.error(f"expected a type, found {tok[1]!r}")
        while self.at_punct("["):
            self.i += 1
            length: int | None = None
            nxt = self.peek()
            if nxt is not None and nxt[0] == "number":
                self.i += 1
                if nxt[1] != "0" and nxt[1].startswith("0"):
                    raise self.error(f"array length {nxt[1]} has a leading zero", nxt[2])
                length = int(nxt[1])
                if length == 0:
                    raise self.error("a fixed-size array needs a length of at least 1", nxt[2])
            self.expect("]", "']' closing the array type")
            typ = AbiType("array", elem=typ, length=length)
        return typ

    def _punct_at(self, offset: int, value: str) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok[0] == "punct" and tok[1] == value

    def _elementary(self, name: str, column: int) -> AbiType:
        if name in ("address", "bool", "string", "bytes"):
            if name == "address":
                # Solidity sources may say "address payable"; the ABI type is address.
                nxt = self.peek()
                if nxt is not None and nxt[0] == "ident" and nxt[1] == "payable":
                    self.i += 1
            return AbiType(name)
        if name == "byte":  # old Solidity alias
            return AbiType("bytesN", 1)
        m = _INT_RE.fullmatch(name)
        if m:
            digits = m.group(2)
            bits = int(digits) if digits else 256
            if (digits.startswith("0")) or not (8 <= bits <= 256 and bits % 8 == 0):
                raise self.error(
                    f"unknown type {name!r} ({m.group(1)}N needs N a multiple of 8 from 8 to 256)",
                    column,
                )
            return AbiType(m.group(1), bits)
        m = _BYTES_RE.fullmatch(name)
        if m:
            size = int(m.group(1))
            if m.group(1).startswith("0") or not 1 <= size <= 32:
                raise self.error(f"unknown type {name!r} (bytesN needs N from 1 to 32)", column)
            return AbiType("bytesN", size)
        if _FIXED_RE.fullmatch(name) or name == "function":
            raise self.error(f"type {name!r} is not supported by indexer", column)
        raise self.error(f"unknown type {name!r}", column)


def parse_type(text: str) -> AbiType:
    """Parse one ABI type string (``uint256``, ``(address,uint8)[]``); ValueError if malformed."""
    parser = TypeParser(text)
    typ = parser.parse_type()
    if not parser.at_end():
        raise parser.error(f"unexpected {parser.take()[1]!r} after the type")
    return typ
