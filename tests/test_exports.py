"""The public API: what `indexer` exports, and that nothing private leaks into it."""

from __future__ import annotations

import indexer


def test_all_is_sorted_and_complete() -> None:
    assert indexer.__all__ == sorted(indexer.__all__)
    public = {name for name in vars(indexer) if not name.startswith("_")}
    modules = {
        "abi",
        "cli",
        "config",
        "handlers",
        "persist",
        "runtime",
        "sources",
        "store",
        "testing",
    }
    assert public - modules == set(indexer.__all__)


def test_public_names_present_themselves_as_indexer() -> None:
    for name in ("Context", "Entity", "Event", "Index", "IndexerError", "HandlerError"):
        assert getattr(indexer, name).__module__ == "indexer", name
