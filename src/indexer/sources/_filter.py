"""Which logs a chain wants: ``LogFilter`` (topic0 -> allowed addresses)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["LogFilter", "normalise_hex"]

_HEX_DIGITS = frozenset("0123456789abcdef")


def normalise_hex(value: object, digits: int, what: str) -> str:
    """Normalise ``value`` to lowercase ``0x`` + ``digits`` hex digits, or raise ConfigError."""
    if isinstance(value, str):
        text = value.lower()
        if len(text) == 2 + digits and text.startswith("0x") and _HEX_DIGITS.issuperset(text[2:]):
            return text
    raise ConfigError(f"{what} {value!r} is not 0x followed by {digits} hex digits")


class LogFilter:
    """Which logs a chain wants: topic0 -> allowed addresses (None = any address / wildcard).

    Topics and addresses are normalised to lowercase.  A malformed one raises
    :class:`~indexer.ConfigError`.
    """

    __slots__ = ("_wanted",)

    def __init__(self, wanted: Mapping[str, frozenset[str] | None]) -> None:
        normalised: dict[str, frozenset[str] | None] = {}
        for topic0, addresses in wanted.items():
            key = normalise_hex(topic0, 64, "topic0")
            if addresses is None:
                normalised[key] = None
            else:
                normalised[key] = frozenset(normalise_hex(a, 40, "address") for a in addresses)
        self._wanted = normalised

    @property
    def topics(self) -> frozenset[str]:
        """The wanted topic0 values (lowercase ``0x`` hex)."""
        return frozenset(self._wanted)

    def addresses(self, topic0: str) -> frozenset[str] | None:
        """The addresses allowed for ``topic0`` (None = any); KeyError if it is not wanted."""
        return self._wanted[topic0]

    def matches(self, address: str, topic0: str) -> bool:
        """True if a log from ``address`` with first topic ``topic0`` is wanted (lowercase hex)."""
        try:
            allowed = self._wanted[topic0]
        except KeyError:
            return False
        return allowed is None or address in allowed

    def __repr__(self) -> str:
        parts = [
            f"{t[:10]}…: {'any' if a is None else len(a)} address{'es' if a is None or len(a) != 1 else ''}"
            for t, a in self._wanted.items()
        ]
        return f"LogFilter({', '.join(parts)})"
