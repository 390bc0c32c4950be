"""Readiness per chain: end block, head, file chains, nothing committed."""

from __future__ import annotations

from indexer.api import ChainTarget, readiness, status_body
from indexer.persist import ChainRow


def _ready(target: ChainTarget, row: ChainRow | None) -> tuple[bool, str]:
    (chain,) = status_body([target], None if row is None else {target.chain_id: row})
    return chain["ready"], chain["detail"]


def test_a_chain_with_an_end_block_is_ready_at_it() -> None:
    target = ChainTarget(1, 100, 200, follows_head=True)
    assert _ready(target, None) == (False, "nothing committed yet")
    assert _ready(target, ChainRow(1, 100, 199, 5, 500)) == (
        False,
        "committed block 199 of end_block 200",
    )
    assert _ready(target, ChainRow(1, 100, 200, 5, 500))[0]


def test_a_followed_chain_is_ready_at_the_head_it_reported() -> None:
    target = ChainTarget(1, 0, None, follows_head=True)
    assert _ready(target, ChainRow(1, 0, 41, 5, 42)) == (False, "committed block 41, head 42")
    assert _ready(target, ChainRow(1, 0, 42, 5, 42))[0]
    assert _ready(target, ChainRow(1, 0, 42, 5, None)) == (
        False,
        "committed block 42, head not known yet",
    )


def test_a_file_chain_without_end_block_is_ready_once_committed() -> None:
    target = ChainTarget(1, 0, None, follows_head=False)
    assert not _ready(target, None)[0]
    assert _ready(target, ChainRow(1, 0, 7, 5, None)) == (True, "committed block 7")


def test_every_chain_must_be_ready() -> None:
    targets = [ChainTarget(1, 0, 10, True), ChainTarget(137, 0, 20, True)]
    rows = {1: ChainRow(1, 0, 10, 3, 12), 137: ChainRow(137, 0, 19, 3, 25)}
    chains = status_body(targets, rows)
    assert [c["chain_id"] for c in chains] == [1, 137]
    assert readiness(chains) == (
        False,
        [{"chain_id": 137, "reason": "committed block 19 of end_block 20"}],
    )
    rows[137] = ChainRow(137, 0, 20, 4, 25)
    assert readiness(status_body(targets, rows)) == (True, [])
