"""Median, min and max of repeated measurements, and reading nested results."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def spread(values: Sequence[float]) -> dict[str, Any] | None:
    """Median, min, max and n of ``values`` (None when empty)."""
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def dig(record: Mapping[str, Any], *path: str) -> Any:
    """``record[path[0]][path[1]]...``, or None where a key is missing or a level is no dict."""
    value: Any = record
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value
