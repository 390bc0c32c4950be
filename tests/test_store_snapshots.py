"""Snapshots taken while processing goes on, and loads merged under unwritten changes.

Deterministic cases the store state machine reaches only by luck: an id
changed several times around a write in flight, and a committed row read
back while memory holds an unwritten delete of it.
"""

from __future__ import annotations

from typing import Annotated

from indexer import Entity, Index
from indexer.store import Store, entity_spec


class Account(Entity):
    id: str
    token: Annotated[str, Index]
    balance: int = 0


def account(id: str, balance: int, token: str = "t") -> Account:
    return Account(id=id, token=token, balance=balance)


def changed_at_every_checkpoint(upto: int) -> Store:
    """A store where id "a" changed at checkpoints 1..upto, sealed after each."""
    store = Store([entity_spec(Account)], target=1000)
    table = store.table(Account)
    for cp in range(1, upto + 1):
        store.processed = cp
        table.set("a", account("a", cp), cp)
        store.seal()
    return store


def test_a_snapshot_below_later_changes_takes_history_up_to_its_checkpoint_only() -> None:
    # A write up to checkpoint 2 starts while the loop has already changed
    # "a" at 3 and 4: its history rows are those of 1 and 2, each once.
    store = changed_at_every_checkpoint(4)
    (changes,) = store.snapshot(2, history=True)
    assert changes.upserts == [account("a", 2)]
    assert sorted((id, cp, v) for id, cp, v in changes.history) == [
        ("a", 1, account("a", 1)),
        ("a", 2, account("a", 2)),
    ]
    # The next write takes the rest, and nothing twice.
    store.mark_committed(2)
    (rest,) = store.snapshot(4, history=True)
    assert rest.upserts == [account("a", 4)]
    assert sorted((id, cp) for id, cp, _v in rest.history) == [("a", 3), ("a", 4)]


def test_a_committed_row_never_revives_an_unwritten_delete() -> None:
    store = Store([entity_spec(Account)], target=1000)
    table = store.table(Account)
    store.processed = 1
    table.set("gone", None, 1)  # deleted in memory, not written yet
    # The database still holds the committed row, and answers both loads with it.
    table.load(["gone"], [account("gone", 7)])
    assert table.get("gone") is None
    assert table.load_find("token", "t", [account("gone", 7), account("kept", 1)]) == [
        account("kept", 1)
    ]
    assert table.get("gone") is None
    (changes,) = store.snapshot(1)
    assert changes.deletes == ["gone"]
