"""One run per schema: a second `indexer run` on the same schema fails at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from indexer import AlreadyRunningError
from indexer.testing import open_rpc_server

from ._chains import CommitWatch, expected, make_rpc_project, run, scripted_chain, tables
from ._projects import raised

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_second_run_on_the_same_schema_is_refused(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    chain, _rng = scripted_chain(3, head=20)
    async with open_rpc_server(chain) as node:
        # No end block: the first run follows the head until cancelled.
        project = make_rpc_project(tmp_path, schema, node.url, end_block=None)
        watch = CommitWatch()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: run(project, database_url, reporter=watch, report_interval=0.01)
            )
            await watch.wait_for(20)
            # A second project on the same schema, which would otherwise end at
            # once (block 20 is committed): refused, whether it resets or not.
            second = make_rpc_project(tmp_path, schema, node.url, end_block=20, name="second")
            for reset in (False, True):
                with raised(AlreadyRunningError, match=f"already indexing schema '{schema}'"):
                    await run(second, database_url, reset=reset)
            nursery.cancel_scope.cancel()
        # The refused runs changed nothing; the lock went with the first run.
        assert tables(database_url, schema) == expected(chain, 20)
        chain.advance(5)
        other = make_rpc_project(tmp_path, schema, node.url, end_block=25, name="again")
        summary = await run(other, database_url)
    assert summary.chains[1][0] == 25
    assert tables(database_url, schema) == expected(chain, 25)
