"""``indexer run`` as a real process, following a JSON-RPC chain through reorgs of depth 1..20.

The scripted chain is served over real sockets from the test's own Trio loop,
and grows while the CLI follows it.  The tables at the end must equal an
independent computation over the final canonical chain.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

import trio

from indexer.testing import open_rpc_server

from ._chains import (
    expected,
    framework_rows,
    make_rpc_project,
    progress,
    random_logs,
    replace_logs,
    scripted_chain,
    tables,
)

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from pathlib import Path

HEAD0 = 50
BLOCKS = 150
END = HEAD0 + BLOCKS
# New block number (counted from HEAD0) -> depth of the reorg right after it.
REORGS = {20: 1, 45: 4, 70: 9, 100: 15, 125: 20}
ROLLED_BACK = re.compile(
    r"WARNING indexer\.runtime: chain 1 reorganised \(detected at block (\d+)\): "
    r"rolled back to block (\d+)"
)


async def test_cli_run_through_reorgs_ends_with_the_canonical_tables(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    chain, rng = scripted_chain(21, head=HEAD0)
    done: list[subprocess.CompletedProcess[bytes]] = []

    async def wait_until(check: Callable[[], bool]) -> bool:
        """Whether ``check()`` (run in a thread) came true within 30 s, before the CLI ended."""
        with trio.move_on_after(30):
            while not done:
                if await trio.to_thread.run_sync(check):
                    return True
                await trio.sleep(0.05)
        return False

    def tip_committed() -> bool:
        block = progress(database_url, schema)
        return block is not None and block >= chain.head

    def new_tip_committed() -> bool:
        query = (
            "SELECT block_hash FROM {}._indexer_checkpoints"
            f" WHERE chain_id = 1 AND block_number = {chain.head} ORDER BY id DESC LIMIT 1"
        )
        rows = framework_rows(database_url, schema, query)
        return bool(rows) and rows[0][0] == chain.block(chain.head).hash

    async with open_rpc_server(chain) as server:
        project = make_rpc_project(
            tmp_path, schema, server.url, end_block=END, max_reorg_depth=25, poll_interval=0.05
        )
        command = [sys.executable, "-m", "indexer", "run", str(project), "--no-progress"]
        env = {**os.environ, "INDEXER_DATABASE_URL": database_url}

        async def cli() -> None:
            done.append(
                await trio.run_process(
                    command, capture_stdout=True, capture_stderr=True, check=False, env=env
                )
            )

        # (head, depth, whether the indexer had committed the head) of each reorg.
        reorgs: list[tuple[int, int, bool]] = []
        with trio.fail_after(240):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cli)
                for step in range(1, BLOCKS + 1):
                    await trio.sleep(0.03)
                    chain.advance(1, random_logs(rng, [chain.head + 1]))
                    depth = REORGS.get(step)
                    if depth is not None:
                        # Pause the chain until the indexer has committed its tip,
                        # so that the reorg replaces blocks already in the database,
                        # and again until it has committed the new branch.
                        committed = await wait_until(tip_committed)
                        reorgs.append((chain.head, depth, committed))
                        chain.reorg(depth, replace_logs(rng, chain, depth))
                        await wait_until(new_tip_committed)
                assert chain.head == END  # no reorg after the chain reached the end block
    (result,) = done
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, stderr
    assert f"committed through block {END:,}" in stdout
    assert tables(database_url, schema) == expected(chain, END)
    # Every reorg of committed blocks was rolled back to the block below it.
    rolled_back = [(int(d), int(b)) for d, b in ROLLED_BACK.findall(stderr)]
    hit = [(head, head - depth) for head, depth, committed in reorgs if committed]
    assert len(hit) >= 3, reorgs
    for head, kept in hit:
        assert (head, kept) in rolled_back, (head, kept, rolled_back)
    assert len(rolled_back) >= 3, stderr
