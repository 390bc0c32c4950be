"""Unit tests of the pure store: entities, tables, snapshots, capacity."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

from indexer import ConfigError, Entity, EntityError, Index
from indexer.store import MISSING, Store, check_entity, entity_spec


class Account(Entity):
    id: str
    token: Annotated[str, Index]
    holder: str
    balance: int = 0
    note: str | None = None


class Blob(Entity):
    id: str
    data: bytes
    ratio: float
    flag: bool


def acct(id: str, token: str = "t", balance: int = 0) -> Account:
    return Account(id=id, token=token, holder="h", balance=balance)


def test_entity_spec_and_types() -> None:
    spec = entity_spec(Account)
    assert spec.table == "account"
    assert [(f.name, f.pg_type, f.nullable, f.indexed) for f in spec.fields] == [
        ("id", "text", False, False),
        ("token", "text", False, True),
        ("holder", "text", False, False),
        ("balance", "numeric(78,0)", False, False),
        ("note", "text", True, False),
    ]
    assert entity_spec(Blob).table == "blob"


def test_entities_are_immutable_values() -> None:
    a = acct("1", balance=5)
    with pytest.raises(AttributeError):
        a.balance = 6  # type: ignore[misc]
    b = a.replace(balance=6)
    assert (a.balance, b.balance) == (5, 6)
    assert a == acct("1", balance=5)
    assert a != b
    assert repr(a) == "Account(id='1', token='t', holder='h', balance=5, note=None)"
    with pytest.raises(TypeError):
        a.replace(nope=1)


BAD_VALUES: list[tuple[type[Entity], dict[str, Any], str]] = [
    (Account, {"balance": "5"}, "balance = '5': expected int, got str"),
    (Account, {"balance": 10**78}, "numeric(78,0)"),
    (Account, {"balance": -(10**78)}, "numeric(78,0)"),
    (Account, {"balance": True}, "expected int, got bool"),
    (Account, {"token": "t\x00"}, "token = 't\\x00': it contains a NUL byte"),
    (Account, {"token": None}, "expected str, got NoneType"),
    (Blob, {"data": "x"}, "expected bytes"),
    (Blob, {"flag": 1}, "expected bool"),
]
GOOD: dict[type[Entity], dict[str, Any]] = {
    Account: {"id": "1", "token": "t", "holder": "h"},
    Blob: {"id": "1", "data": b"x", "ratio": 1.0, "flag": True},
}


@pytest.mark.parametrize(("cls", "change", "fragment"), BAD_VALUES)
def test_a_bad_value_is_rejected_where_the_entity_is_built(
    cls: type[Entity], change: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(EntityError, match="id='1'") as info:
        cls(**{**GOOD[cls], **change})
    assert fragment in str(info.value)
    good = cls(**GOOD[cls])
    with pytest.raises(EntityError, match="id='1'") as info:
        good.replace(**change)
    assert fragment in str(info.value)
    # The same check for entities built around the constructor.
    values = [*good]
    for name, value in change.items():
        values[entity_spec(cls).field(name).position] = value
    with pytest.raises(EntityError, match="id='1'") as info:
        check_entity(tuple.__new__(cls, values))
    assert fragment in str(info.value)


def test_the_widest_numeric_values_fit() -> None:
    """numeric(78,0) holds 78 digits either side of zero: both ends are accepted."""
    for value in (10**78 - 1, -(10**78 - 1)):
        built = Account(**{**GOOD[Account], "balance": value})
        assert built.balance == value
        assert built.replace(balance=-value).balance == -value
        check_entity(built)  # raises if it does not fit


def test_replace_names_the_entity_when_a_later_field_is_unchanged() -> None:
    class Late(Entity):
        amount: int
        id: str

    with pytest.raises(EntityError, match=r"Late\(id='x'\)\.amount = 'no'"):
        Late(amount=1, id="x").replace(amount="no")


def test_check_entity_accepts_good_values() -> None:
    check_entity(Account(id="1", token="t", holder="h", balance=-(10**77), note=None))
    check_entity(Blob(id="1", data=b"\x00", ratio=3, flag=False))


def test_bad_declarations() -> None:
    with pytest.raises(ConfigError, match="id: str"):

        class NoId(Entity):
            name: str

    with pytest.raises(ConfigError, match="unsupported field type"):

        class BadType(Entity):
            id: str
            values: list[int]

    with pytest.raises(ConfigError, match="field names"):

        class Reserved(Entity):
            id: str
            replace: int  # type: ignore[assignment]


def test_table_get_set_and_misses() -> None:
    store = Store([entity_spec(Account)], target=100)
    t = store.table(Account)
    assert t.get("1") is MISSING
    t.load(["1", "2"], [acct("1", balance=3)])
    assert t.get("1") == acct("1", balance=3)
    assert t.get("2") is None  # remembered as absent: no second query
    t.set("2", acct("2"), 1)
    t.set("1", None, 1)
    assert t.get("1") is None
    assert t.get("2") == acct("2")
    t.complete = True
    assert t.get("zz") is None


def test_load_never_overwrites_memory() -> None:
    store = Store([entity_spec(Account)], target=100)
    t = store.table(Account)
    t.set("1", acct("1", balance=9), 1)  # unwritten
    t.set("2", None, 1)  # deleted, unwritten
    t.set("3", acct("3", balance=3), 1)
    store.processed = 1
    store.mark_committed(1)  # "3" is now a committed, cached value
    t.load(["1", "2", "3"], [acct("1", balance=1), acct("2", balance=2), acct("3", balance=0)])
    assert t.get("1") == acct("1", balance=9)
    assert t.get("2") is None
    assert t.get("3") == acct("3", balance=3)


def test_snapshot_takes_state_at_checkpoint_and_history() -> None:
    store = Store([entity_spec(Account)], target=100)
    t = store.table(Account)
    t.set("1", acct("1", balance=1), 1)
    t.set("1", acct("1", balance=2), 1)  # same checkpoint: replaces
    t.set("1", acct("1", balance=3), 2)
    t.set("2", acct("2"), 3)
    t.set("1", None, 4)
    store.processed = 4
    (snap,) = store.snapshot(1, history=True)  # nothing of checkpoints 2..4
    assert snap.upserts == [acct("1", balance=2)]
    assert snap.history == [("1", 1, acct("1", balance=2))]
    (snap,) = store.snapshot(2, history=True)
    assert snap.upserts == [acct("1", balance=3)]
    assert snap.deletes == []
    assert sorted(snap.history) == [("1", 1, acct("1", balance=2)), ("1", 2, acct("1", balance=3))]
    store.mark_committed(2)
    (snap,) = store.snapshot(4, history=True)
    assert snap.upserts == [acct("2")]
    assert snap.deletes == ["1"]
    assert sorted(snap.history, key=lambda h: (h[0], h[1])) == [("1", 4, None), ("2", 3, acct("2"))]
    store.mark_committed(4)
    assert store.snapshot(4) == [store.snapshot(4)[0]]
    assert not len(store.snapshot(4)[0])
    assert t.statistics()["superseded"] == 0
    assert t.statistics()["dirty"] == 0


def test_find_index_tracks_memory_and_completeness() -> None:
    store = Store([entity_spec(Account)], target=100)
    t = store.table(Account)
    assert t.find_cached("token", "A") is None
    got = t.load_find("token", "A", [acct("1", "A"), acct("2", "A")])
    assert [e.id for e in got] == ["1", "2"]
    t.set("3", acct("3", "A"), 1)
    t.set("1", acct("1", "B"), 1)
    t.set("2", None, 1)
    assert [e.id for e in t.find_cached("token", "A") or []] == ["3"]
    assert t.find_cached("token", "B") is None  # never loaded from the database


def test_eviction_spares_unwritten_changes_and_breaks_complete_indices() -> None:
    store = Store([entity_spec(Account)], target=4)
    t = store.table(Account)
    t.complete = True  # started empty: the six rows below are all the database holds
    t.load_find("token", "A", [acct(str(i), "A") for i in range(6)])
    t.load_find("token", "B", [])
    # "1" gets an unwritten change but stays among the least recently used
    # (set does not move an id), so recency alone would evict it.
    t.set("1", acct("1", "A", balance=7), 1)
    t.set("9", acct("9", "B"), 1)  # unwritten, and the most recent
    store.processed = 1
    assert list(t.values)[:2] == ["0", "1"]
    assert store.evict_committed() == 5  # down to half the target (2): 7 held, 2 unwritten
    assert set(t.values) == {"1", "9"}
    assert t.get("1") == acct("1", "A", balance=7)
    (snap,) = store.snapshot(1)
    assert sorted(snap.upserts) == [acct("1", "A", balance=7), acct("9", "B")]
    assert t.find_cached("token", "A") is None  # lost members: no longer complete
    assert t.find_cached("token", "B") == [acct("9", "B")]  # lost none: still complete
    assert not t.complete
    assert t.get("3") is MISSING  # evicted: the database may hold it
    store.mark_committed(1)
    assert store.evict_committed() == 0  # at half already


def test_effect_cache_eviction_spares_unwritten_outputs() -> None:
    store = Store([], target=2, effects=[("label", True)])
    cache = store.effects["label"]
    cache.load("k0", 0)  # stored
    cache.put("k1", "1", 10, 1)  # unwritten, and the least recently used after k0
    cache.load("k2", 2)
    cache.load("k3", 3)
    store.processed = 1
    assert store.evict_committed() == 3  # down to half the target (1): only k1 is left
    assert cache.get("k1") == 10
    assert store.effect_snapshot(1) == {"label": [("k1", "1", 10)]}
    store.mark_committed(1)
    cache.put("k4", "4", 40, 2)
    assert store.evict_committed() == 1  # k1 is written now: it may go, k4 may not
    assert list(cache.values) == ["k4"]


def test_eviction_is_least_recently_referenced_first() -> None:
    store = Store([entity_spec(Account)], target=4)
    t = store.table(Account)
    t.load(["1", "2", "3", "4"], [acct(i) for i in "1234"])
    t.get("1")  # referenced: moves to the recent end
    store.evict_committed()
    assert set(t.values) == {"4", "1"}


def test_a_table_that_was_complete_still_knows_new_ids_are_absent_after_evicting() -> None:
    store = Store([entity_spec(Account)], target=4)
    t = store.table(Account)
    t.complete = True  # started empty: the database holds only what memory holds
    t.set("gone", None, 1)
    ids = [str(n) for n in range(6)]
    for id in ids:
        t.set(id, acct(id), 1)
    store.processed = 1
    store.mark_committed(1)
    assert store.evict_committed() == 5  # "gone" and 0..3, least recent first
    assert not t.complete
    evicted = [id for id in ids if id not in t.values]
    assert evicted == ["0", "1", "2", "3"]
    for id in evicted:
        assert t.get(id) is MISSING  # may be in the database: ask it
    assert t.get("never-seen") is None  # certainly not: no query
    assert t.get("gone") is None  # evicted as absent, so not noted, and still absent
    t.forget()
    assert t.get("never-seen") is MISSING  # after forget nothing is known


def test_a_table_that_was_not_complete_keeps_asking() -> None:
    store = Store([entity_spec(Account)], target=2)
    t = store.table(Account)
    t.load(["1", "2", "3"], [acct(i) for i in "123"])
    assert store.evict_committed() > 0
    assert t.gone is None
    assert t.get("never-seen") is MISSING


def test_id_filter_has_no_false_negatives_and_few_false_positives() -> None:
    from indexer.store._id_filter import IdFilter

    f = IdFilter()
    added = [f"0x{i:040x}-holder" for i in range(200_000)]
    for id in added:
        f.add(id)
    assert all(id in f for id in added)
    others = [f"0x{i:040x}-other" for i in range(100_000)]
    false_positives = sum(id in f for id in others)
    # (1 - e^(-2 * 200k / 2^25))^2 = 1.4e-4: about 14 in 100k.
    assert false_positives < 50
    assert f.added == len(added)


def test_store_never_imports_io_layers() -> None:
    """store/ is pure: no Trio, psycopg, persistence or runtime imports (checked on the source)."""
    import ast
    from pathlib import Path

    import indexer.store

    forbidden = (
        "trio",
        "psycopg",
        "indexer.persist",
        "indexer.runtime",
        "indexer.sources",
        "httpx",
    )
    pkg = Path(indexer.store.__file__).parent
    offenders = []
    for path in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against indexer.store
                    parts = ["indexer", "store"][: 3 - node.level] if node.level <= 2 else []
                    base = ".".join([*parts, base] if base else parts)
                names = [base]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(forbidden)]
    assert offenders == []
