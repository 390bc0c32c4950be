"""The walk over a range's blocks: a block that only a block handler visits is a block of its own.

Deterministic cases of what the reorg machine reaches only by luck: within
the reorg window every block is a rollback target, so a block handler's
write in a block without logs must not supersede (and so erase) the value
the same entity had at the block before, which a rollback to that block
restores.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from indexer import Block, Entity
from indexer._fields import make_block
from indexer.handlers import BlockHandler
from indexer.runtime._walk import Walk
from indexer.sources import BlockRange
from indexer.store import Store, entity_spec


class Counter(Entity):
    id: str
    value: int = 0


def _value(entity: Entity | None) -> int:
    assert isinstance(entity, Counter)
    return entity.value


def _block(number: int) -> Block:
    values = [("number", number), ("hash", f"0x{number:064x}"), ("parent_hash", "0x0")]
    return make_block("block@of chain 1", [*values, ("timestamp", 1_700_000_000 + number)])


def _walk(store: Store, ctx: Any, handler_blocks: list[int], first: int, last: int) -> Walk:
    async def bump(block: Block, ctx: Any) -> None:
        table = store.table(Counter)
        current = table.get("c")  # MISSING before the first write
        before = current.value if isinstance(current, Counter) else 0
        table.set("c", Counter(id="c", value=before + 1), ctx._cp)

    handlers = tuple(BlockHandler(bump, 1, n, 1_000, n) for n in handler_blocks)
    rng = BlockRange(
        1,
        first,
        last,
        [],
        hashes={n: f"0x{n:064x}" for n in range(first, last + 1)},
        blocks={n: _block(n) for n in handler_blocks},
    )
    return Walk(rng, store, ctx, handlers, seal_every_block=True)


async def test_a_handler_block_keeps_the_value_of_the_block_before_for_a_rollback() -> None:
    store = Store([entity_spec(Counter)], target=1_000)
    ctx = SimpleNamespace(_cp=0)
    walk = _walk(store, ctx, handler_blocks=[11, 12], first=10, last=13)
    await walk.enter(10, "0x10", 0)
    store.table(Counter).set("c", Counter(id="c", value=100), ctx._cp)  # a log handler at 10
    await walk.finish(13, 1)
    by_block = {row.block_number: row.id for row in walk.checkpoints}
    assert sorted(by_block) == [10, 11, 12, 13]
    # What a write (or a rollback) needs at each block: the value as of that block.
    for block, want in ((10, 100), (11, 101), (12, 102), (13, 102)):
        (changes,) = store.snapshot(by_block[block], history=True)
        assert [_value(c) for c in changes.upserts] == [want], block
    # The history rows hold every block's version, so a rollback to 10 restores 100.
    (changes,) = store.snapshot(by_block[13], history=True)
    assert [(cp, _value(v)) for _id, cp, v in changes.history] == [
        (by_block[10], 100),
        (by_block[11], 101),
        (by_block[12], 102),
    ]


async def test_handler_blocks_between_blocks_with_logs_are_visited_in_order() -> None:
    store = Store([entity_spec(Counter)], target=1_000)
    ctx = SimpleNamespace(_cp=0)
    walk = _walk(store, ctx, handler_blocks=[3, 5], first=1, last=6)
    seen: list[tuple[int, int]] = []
    for number in (2, 4, 6):
        await walk.enter(number, f"0x{number:x}", 1 if seen else 0)
        seen.append((number, ctx._cp))
    await walk.finish(6, 1)
    blocks = [row.block_number for row in walk.checkpoints]
    assert blocks == [1, 2, 3, 4, 5, 6]  # the window: every block, in order
    checkpoints = [row.id for row in walk.checkpoints]
    assert checkpoints == sorted(checkpoints) == list(range(1, 7))
    assert store.table(Counter).get("c") == Counter(id="c", value=2)  # at 3 and at 5
