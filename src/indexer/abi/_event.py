"""One event's ABI (:class:`EventSpec`, :class:`Param`), checked and normalised on construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from eth_hash.auto import keccak

from ._compile import compile_decoder
from ._types import IDENT_RE, AbiType, parse_type

if TYPE_CHECKING:
    from ._compile import Decoder

__all__ = ["EventSpec", "Param"]


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
    #: The parsed type of each input, derived in __post_init__ (not part of equality or repr).
    types: tuple[AbiType, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not IDENT_RE.fullmatch(self.name):
            raise ValueError(f"event name {self.name!r} is not an identifier")
        types: list[AbiType] = []
        params: list[Param] = []
        seen: set[str] = set()
        for position, param in enumerate(self.inputs):
            try:
                typ = parse_type(param.type)
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
        object.__setattr__(self, "types", tuple(types))

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
