"""A fixed-size Bloom filter of ids: "certainly not added" or "maybe added".

A table that started empty knows every row the database holds for it,
until it evicts some.  Keeping the evicted ids in this filter keeps most of
that knowledge: an id the filter has never seen is certainly not in the
database, so a brand-new id needs no query.  Without it, once anything is
evicted, every new id costs a lookup (on the cache-hostile benchmark, about
half a million of them).

The size is fixed (4 MiB, 2 probes): memory follows the target, not the
data.  With n ids added the false-positive rate is about
``(1 - exp(-2n / 2**25)) ** 2``: 0.09 % at 500k ids, 1 % at 1.8M, 7 % at 5M.
A false positive only costs the query that would have been made anyway.
Two probes rather than three: each probe is a few Python operations on
every miss and every eviction, and the third bought little at these sizes.

The probes are two slices of ``hash(id)``, which CPython caches on the
string (ids are hashed anyway as dict keys).
"""

from __future__ import annotations

from typing import Final

__all__ = ["IdFilter"]

_BITS: Final = 25
_MASK: Final = (1 << _BITS) - 1


class IdFilter:
    """Ids added so far, answering membership with no false negatives."""

    __slots__ = ("_bits", "added")

    def __init__(self) -> None:
        self._bits = bytearray(1 << (_BITS - 3))
        self.added = 0

    def add(self, id: str) -> None:
        h = hash(id)
        a, b = h & _MASK, (h >> _BITS) & _MASK
        bits = self._bits
        bits[a >> 3] |= 1 << (a & 7)
        bits[b >> 3] |= 1 << (b & 7)
        self.added += 1

    def __contains__(self, id: str) -> bool:
        h = hash(id)
        a, b = h & _MASK, (h >> _BITS) & _MASK
        bits = self._bits
        return bool(bits[a >> 3] >> (a & 7) & 1 and bits[b >> 3] >> (b & 7) & 1)
