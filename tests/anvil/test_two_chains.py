"""One project following two anvil nodes (chain ids 31337 and 31338) at once.

The same token is deployed on both (same deployer and nonce: same address).
Entities are keyed by chain (``Account``, ``Supply``) except ``Holder``,
shared by the chains: a holder's balance on 31337 plus its balance on 31338.
A rollback of one chain rolls back every chain to its checkpoint (they
interleave) and the other chain is fetched again: nothing it had committed
may be lost or counted twice.  The oracle checks both nodes and the sums.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ._indexer import check_oracle, wait_caught_up

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._indexer import Followed, IndexerCli
    from ._node import Traffic

pytestmark = pytest.mark.anvil


def test_two_chains_with_reorgs_on_each(
    token_chain: Callable[[int, int], tuple[Followed, Traffic]],
    indexer_cli: Callable[[Sequence[Followed]], IndexerCli],
    database_url: str,
    schema: str,
) -> None:
    a, traffic_a = token_chain(31337, 21)
    b, traffic_b = token_chain(31338, 22)
    assert a.token == b.token
    chains = [a, b]
    cli = indexer_cli(chains)
    cli.start()

    def settle() -> None:
        wait_caught_up(database_url, schema, chains, cli)

    for _round in range(3):
        traffic_a.blocks(6, per_block=10)
        traffic_b.blocks(6, per_block=10)
    settle()
    tables = check_oracle(database_url, schema, chains)
    # Holders on both chains: the shared entity really sums two chains.
    assert any(t != tables.accounts.get(f"31337:{h}") for h, t in tables.holders.items())

    expected = []  # (chain, detected at, rolled back to)
    # A reorg on A while B is idle, then one on B while A is idle.
    for traffic, chain, depth in ((traffic_a, a, 5), (traffic_b, b, 8), (traffic_a, a, 1)):
        head, common = traffic.reorg(depth)
        expected.append((chain.chain_id, head, common))
        settle()
        check_oracle(database_url, schema, chains)
    # Reorgs on A while B grows, and the other way round, without waiting
    # in between: the rollback of one chain meets the other mid-flight.
    for traffic, other, depth in ((traffic_a, traffic_b, 6), (traffic_b, traffic_a, 3)):
        other.blocks(4, per_block=10)
        traffic.reorg(depth)
        other.blocks(4, per_block=10)
        settle()
        check_oracle(database_url, schema, chains)
    # Both at once.
    traffic_a.reorg(4)
    traffic_b.reorg(2)
    traffic_a.blocks(2)
    settle()
    tables = check_oracle(database_url, schema, chains)

    assert cli.stop() == 0, cli.tail()
    assert "Traceback" not in cli.stderr()
    rollbacks = cli.rollbacks()
    for item in expected:
        assert item in rollbacks, (item, rollbacks)
    stdout = cli.stdout()
    for chain in chains:
        assert f"chain {chain.chain_id}: committed through block {chain.node.head():,}" in stdout
    print(
        f"two chains: {len(rollbacks)} rollbacks {rollbacks}; reorg depths A 5, 1, 6, 4 and "
        f"B 8, 3, 2; {traffic_a.sent} + {traffic_b.sent} Transfer transactions; "
        f"{len(tables.holders)} holders"
    )
