"""Real reorgs on anvil while ``indexer run`` follows it, and while it is down (kill -9).

Two ways to replace blocks:

* ``anvil_reorg(depth, txs)`` replaces the last ``depth`` blocks with as many
  new ones holding other transactions: the head number stays the same, only
  the hashes change;
* ``evm_snapshot``/``evm_revert`` back to an earlier block, then new blocks:
  the new branch is longer or shorter than the old one.

A reorg is *synchronised* when the indexer had committed the old head before
it: then it must log exactly ``chain C reorganised (detected at block HEAD):
rolled back to block COMMON``.  After every reorg the tables must match the
node again (see test_follow.py for the oracle).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from .._chains import progress
from ._indexer import check_oracle, wait_caught_up
from ._node import revert, snapshot

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._indexer import Followed, IndexerCli
    from ._node import Traffic

pytestmark = pytest.mark.anvil


# (kind, depth): "reorg" is anvil_reorg(depth); "longer"/"shorter" revert
# `depth` blocks and mine depth + 2 / depth - 2 new ones.
PLAN = (
    ("reorg", 1),
    ("reorg", 3),
    ("reorg", 5),
    ("reorg", 10),
    ("longer", 4),
    ("reorg", 2),
    ("shorter", 6),
    ("reorg", 7),
    ("reorg", 1),
    ("longer", 9),
)


def fork(traffic: Traffic, kind: str, depth: int, settle: Callable[[], None]) -> tuple[int, int]:
    """Replace the last ``depth`` blocks; (old head, common block)."""
    if kind == "reorg":
        return traffic.reorg(depth)
    node = traffic.node
    mark, common = snapshot(node), node.head()
    traffic.blocks(depth, per_block=4)
    settle()  # the indexer commits the blocks about to be replaced
    head = node.head()
    revert(node, mark)
    assert node.head() == common
    traffic.blocks(depth + 2 if kind == "longer" else depth - 2, per_block=4)
    return head, common


def test_reorgs_while_following(
    token_chain: Callable[[int, int], tuple[Followed, Traffic]],
    indexer_cli: Callable[[Sequence[Followed]], IndexerCli],
    database_url: str,
    schema: str,
) -> None:
    chain, traffic = token_chain(31337, 11)
    cli = indexer_cli([chain])
    cli.start()
    traffic.blocks(15, per_block=10)

    def settle() -> None:
        wait_caught_up(database_url, schema, [chain], cli)

    settle()
    check_oracle(database_url, schema, [chain])
    synchronised: list[tuple[str, int, int, int]] = []  # kind, depth, head, common
    for kind, depth in PLAN:
        settle()
        head, common = fork(traffic, kind, depth, settle)
        synchronised.append((kind, depth, head, common))
        settle()
        check_oracle(database_url, schema, [chain])
        traffic.blocks(3, per_block=8)
    # Unsynchronised: the reorg lands while the indexer is still busy with
    # the blocks it replaces (or has not seen them yet).
    unsynchronised = []
    for depth in (3, 6, 4):
        traffic.blocks(depth + 1, per_block=10)
        unsynchronised.append(traffic.reorg(depth))
        settle()
        check_oracle(database_url, schema, [chain])
    assert cli.stop() == 0, cli.tail()
    assert "Traceback" not in cli.stderr()
    rollbacks = cli.rollbacks()
    for _kind, _depth, head, common in synchronised:
        assert (chain.chain_id, head, common) in rollbacks, (head, common, rollbacks)
    assert len(synchronised) <= len(rollbacks) <= len(synchronised) + len(unsynchronised)
    print(
        f"reorgs: {len(synchronised)} synchronised {[(k, d) for k, d, _h, _c in synchronised]}, "
        f"{len(unsynchronised)} unsynchronised (depths 3, 6, 4); {len(rollbacks)} rollbacks logged; "
        f"{traffic.sent} Transfer transactions"
    )


def test_reorgs_while_the_indexer_is_down(
    token_chain: Callable[[int, int], tuple[Followed, Traffic]],
    indexer_cli: Callable[[Sequence[Followed]], IndexerCli],
    database_url: str,
    schema: str,
) -> None:
    chain, traffic = token_chain(31337, 12)
    cli = indexer_cli([chain])
    node = chain.node

    def settle() -> None:
        wait_caught_up(database_url, schema, [chain], cli)

    cli.start()
    traffic.blocks(12, per_block=10)
    settle()
    seen: list[str] = []

    # 1. Caught up, kill -9, anvil_reorg(4) while down, restart: rolled back on start.
    cli.kill()
    head, common = traffic.reorg(4)
    cli.start()
    settle()
    check_oracle(database_url, schema, [chain])
    assert (chain.chain_id, head, common) in cli.rollbacks(), cli.stderr()
    seen.append("reorg 4 while down")

    # 2. Caught up, kill -9, the chain reverted 7 blocks and regrown longer
    #    (with more blocks on top) while down.
    mark = snapshot(node)
    traffic.blocks(7, per_block=6)
    settle()
    cli.kill()
    head = node.head()
    revert(node, mark)
    common = node.head()
    traffic.blocks(11, per_block=6)
    cli.start()
    settle()
    check_oracle(database_url, schema, [chain])
    assert (chain.chain_id, head, common) in cli.rollbacks(), cli.stderr()
    seen.append("revert 7, 11 new blocks while down")

    # 3. kill -9 in the middle of following, then a reorg replacing blocks
    #    it had committed, and 3 more blocks, while down: the restart finds
    #    its stored tip gone and rolls back from it.
    traffic.blocks(10, per_block=12)
    cli.kill()
    committed = progress(database_url, schema, chain.chain_id)
    assert committed is not None
    head, common = traffic.reorg(min(node.head() - committed + 3, 15))
    traffic.blocks(3, per_block=6)
    cli.start()
    settle()
    check_oracle(database_url, schema, [chain])
    assert cli.rollbacks()[-1] == (chain.chain_id, committed, common), cli.stderr()
    seen.append(f"kill at {committed} of {head}, reorg {head - common} + 3 blocks while down")

    # 4. kill -9 soon after a reorg, while the indexer is detecting it or
    #    rolling back.  The rollback is one transaction: it is logged by the
    #    killed run or by the restart, never both (nor by neither, unless the
    #    kill lands between its commit and its log line).
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2):
        settle()
        before = len(cli.rollbacks())

        def kill(delay: float = delay) -> None:
            time.sleep(delay)
            cli.kill()

        head, common = traffic.reorg(8, then=kill)
        cli.start()
        settle()
        check_oracle(database_url, schema, [chain])
        logged = cli.rollbacks()[before:]
        assert logged in ([], [(chain.chain_id, head, common)]), logged
        by = "the killed run" if cli.rollbacks(-2)[-1:] == logged else "the restart"
        seen.append(f"kill {delay} s after a reorg of 8 (rolled back by {by})")

    assert cli.stop() == 0, cli.tail()
    assert "Traceback" not in cli.all_stderr()
    print(f"restarts: {len(cli.runs)}; scenarios: {seen}; rollbacks: {cli.rollbacks()}")
