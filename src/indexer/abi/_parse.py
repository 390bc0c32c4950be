"""Reading event ABIs: human-readable signatures and ABI JSON, into :class:`EventSpec`."""

from __future__ import annotations

from typing import Any

from ._event import EventSpec, Param
from ._types import TypeParser, parse_type

__all__ = ["events_from_abi", "parse_event_signature"]


class _EventParser(TypeParser):
    """The type parser, extended to a whole signature: ``event Name(params) anonymous;``."""

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
                raise self.error("'indexed' given twice")
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
            raise self.error("expected the event name")
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
            raise self.error(f"unexpected {self.take()[1]!r} after the parameter list")
        try:
            return EventSpec(name, tuple(params), anonymous)
        except ValueError as exc:
            raise ValueError(f"{exc} (in {self.text!r})") from None


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
    return _EventParser(text).parse_event()


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
        return parse_type(typ).canonical
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
