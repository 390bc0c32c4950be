"""``indexer run`` follows a real node (anvil) without an end block; the tables match the chain.

The oracle is the node itself: after the indexer has committed the head,
every indexed balance equals ``balanceOf`` and the indexed supply equals
``totalSupply()`` (``eth_call`` at the head), and the Transfer count equals
what ``eth_getLogs`` returns.
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


def test_follows_the_head_and_matches_balance_of_and_total_supply(
    token_chain: Callable[[int, int], tuple[Followed, Traffic]],
    indexer_cli: Callable[[Sequence[Followed]], IndexerCli],
    database_url: str,
    schema: str,
) -> None:
    chain, traffic = token_chain(31337, 7)
    cli = indexer_cli([chain])
    cli.start()
    wait_caught_up(database_url, schema, [chain], cli)
    check_oracle(database_url, schema, [chain])
    for _round in range(4):
        traffic.blocks(12, per_block=12)  # while the indexer follows
        wait_caught_up(database_url, schema, [chain], cli)
        tables = check_oracle(database_url, schema, [chain])
    head = chain.node.head()
    assert cli.stop() == 0, cli.tail()
    stdout = cli.stdout()
    assert stdout.startswith("stopped: "), stdout
    assert f"chain {chain.chain_id}: committed through block {head:,}" in stdout
    assert "Traceback" not in cli.stderr()
    assert cli.rollbacks() == []
    print(
        f"followed {head} blocks, {traffic.sent} Transfer transactions {traffic.kinds}, "
        f"{len(tables.accounts)} accounts"
    )
    assert traffic.sent >= 250
    assert set(traffic.kinds) == {"mint", "transfer", "burn", "self", "zero", "transferFrom"}
