"""A rollback of one chain moves every chain's progress back, each to its own block.

Checkpoints of two chains interleave, so a reorg of one undoes the other's
later checkpoints too (docs/design.md, "Rollback"); the other chain must
then resume right after its last kept block, with its event count reduced
by what was undone.  Against the real transaction, on real PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from indexer import Entity
from indexer.persist import (
    ChainProgress,
    Changeset,
    CheckpointRow,
    commit_changeset,
    connect,
    create_schema,
    execute_rollback,
    read_state,
)
from indexer.store import entity_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

    from indexer.persist import Session


class Note(Entity):
    id: str
    text: str = ""


SPEC = entity_spec(Note)


@pytest.fixture
def session(database_url: str, schema: str) -> Iterator[Session]:
    s = connect(database_url, schema, writer=True)
    create_schema(s.conn, schema, [SPEC], {1: 10, 2: 100})
    yield s
    s.close()


# (checkpoint, chain, block, events): the two chains' blocks interleave.
CHECKPOINTS = [(1, 1, 10, 2), (2, 2, 100, 1), (3, 1, 11, 4), (4, 2, 101, 3), (5, 2, 102, 5)]


@pytest.mark.parametrize(
    ("reorganised", "kept", "want"),
    [
        # Chain 1 keeps block 10: checkpoints 3..5 go, chain 2 goes back to 100.
        (1, 10, {1: (10, 2), 2: (100, 1)}),
        # Chain 2 keeps block 101: only checkpoint 5 goes; chain 1 keeps all.
        (2, 101, {1: (11, 6), 2: (101, 4)}),
        # Chain 2 keeps block 100: checkpoints 4 and 5 go.
        (2, 100, {1: (11, 6), 2: (100, 1)}),
    ],
)
def test_every_chain_resumes_after_its_last_kept_block(
    session: Session, reorganised: int, kept: int, want: dict[int, tuple[int, int]]
) -> None:
    rows = [
        CheckpointRow(cp, chain, block, f"0x{cp:064x}", n) for cp, chain, block, n in CHECKPOINTS
    ]
    totals = {chain: sum(n for _cp, c, _b, n in CHECKPOINTS if c == chain) for chain in (1, 2)}
    commit_changeset(
        session,
        Changeset(
            5,
            [],
            {1: ChainProgress(1, 10, 11, totals[1]), 2: ChainProgress(2, 100, 102, totals[2])},
            rows,
            history=True,
        ),
    )
    result = execute_rollback(session, [SPEC], {reorganised: kept}, committed=5)
    assert result.progress == want
    assert read_state(session.conn, session.schema)[1] == want
