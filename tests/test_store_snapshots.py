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


def _ranges(store: Store, first_cp: int, ranges: int, per_range: int, hand_over_after: int) -> int:
    """The processor far from the head: a seal per range, "a" changed at every
    checkpoint; the runtime marks a hand-over after range ``hand_over_after``.
    Returns the hand-over's checkpoint."""
    table, cp, handed = store.table(Account), first_cp, -1
    for r in range(ranges):
        store.seal()
        for _ in range(per_range):
            cp += 1
            store.processed = cp
            table.set("a", account("a", cp), cp)
        if r == hand_over_after:
            store.mark_handed()
            handed = cp
    return handed


def test_between_hand_overs_a_hot_id_keeps_what_a_write_can_end_at_only() -> None:
    """Far from the head a write ends at the last hand-over (its snapshot may
    not be taken yet) or at the last range's end (a run stopped by an error
    inside the next range): of the values kept per range, only those two stay."""
    store = Store([entity_spec(Account)], target=1000)
    store.mark_handed()  # the run's start
    handed = _ranges(store, 0, 40, 3, hand_over_after=9)  # 30 at the hand-over
    last_end = store.processed  # 120
    # The next range starts (sealed at 120) and changes "a" again: an error here
    # makes the run write up to 120.
    store.seal()
    store.processed = last_end + 1
    store.table(Account).set("a", account("a", last_end + 1), last_end + 1)
    assert store.table(Account).statistics()["superseded"] == 2  # 30 and 120, not 40 values
    (at_handed,) = store.snapshot(handed, history=False)
    assert at_handed.upserts == [account("a", handed)]
    store.mark_committed(handed)
    (at_end,) = store.snapshot(last_end, history=False)
    assert at_end.upserts == [account("a", last_end)]


def test_without_hand_overs_marked_every_range_end_stays_writable() -> None:
    # A store the runtime does not drive (or the reorg window, where history
    # needs them all) keeps a value per sealed range, as before.
    for every in (False, True):
        store = Store([entity_spec(Account)], target=1000)
        if every:
            store.mark_handed()
            store.keep_every_change()
        _ranges(store, 0, 10, 3, hand_over_after=-1)
        store.seal()
        store.processed = 31
        store.table(Account).set("a", account("a", 31), 31)
        assert store.table(Account).statistics()["superseded"] == 10
        for end in (3, 15, 30):
            (changes,) = store.snapshot(end, history=False)
            assert changes.upserts == [account("a", end)]
