"""The JSON-RPC log worker: far ranges fetched and decoded in a child process, exactly.

Every test runs a real node (``open_rpc_server``, real sockets: the child
process dials it) with ``log_worker_min_logs: 1``, so the child starts after
the first far range and fetches the rest, prefetching the next range while
one is processed.  The tables must equal a fold of the canonical chain, and
what the run reports (events, skipped logs, errors) must equal a run
without the worker, through reorgs, "too many results" refusals, node
faults, and the child being killed mid-run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import trio

from indexer import DecodeError, RunSummary
from indexer.testing import RpcServer, ScriptedChain, encode_log, open_rpc_server

from ._chains import (
    TRANSFER,
    expected,
    fold,
    make_rpc_project,
    random_logs,
    replace_logs,
    run,
    set_end_block,
    tables,
)
from ._projects import leaf, raised

if TYPE_CHECKING:
    from pathlib import Path

WORKER = {"log_worker_min_logs": 1}
NO_WORKER = {"log_worker_min_logs": None}


def _worker_ranges(caplog: pytest.LogCaptureFixture) -> int:
    """Ranges the worker fetched, from its closing line (0 if it never started)."""
    total = 0
    for record in caplog.records:
        message = record.getMessage()
        if "the JSON-RPC log worker fetched" in message:
            total += int(message.split("fetched ")[1].split(" ")[0])
    return total


@pytest.mark.parametrize("span", [1, 6])
async def test_far_ranges_from_the_worker_equal_the_chain_through_a_reorg(
    tmp_path: Path,
    database_url: str,
    schema: str,
    caplog: pytest.LogCaptureFixture,
    span: int,
) -> None:
    caplog.set_level(logging.DEBUG, "indexer.sources.rpc")
    rng = random.Random(span)
    chain = ScriptedChain(1, head=90, logs=random_logs(rng, range(1, 91), per_block=6))
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=90, max_reorg_depth=8)
        tuning = {**WORKER, "initial_span": span, "max_span": span}
        first = await run(project, database_url, rpc_tuning=tuning, chunk_logs=7)
        assert tables(database_url, schema) == expected(chain)
        assert first.events == len(chain.logs(1, 90, topic0s=[TRANSFER]))
        assert _worker_ranges(caplog) >= 70 // span  # all but the first far ranges
        # A reorg inside the window, then more far blocks than a window.
        chain.reorg(5, replace_logs(rng, chain, 5))
        chain.advance(40, random_logs(rng, range(91, 131), per_block=6))
        set_end_block(project, 130)
        await run(project, database_url, rpc_tuning=tuning, chunk_logs=7)
        assert tables(database_url, schema) == expected(chain)


async def test_refusals_faults_and_skips_as_without_the_worker(
    tmp_path: Path, database_url: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A node limit halves the span, faults go down the fetcher's path, skips are counted."""
    caplog.set_level(logging.DEBUG, "indexer.sources.rpc")
    rng = random.Random(9)
    logs = random_logs(rng, range(1, 121), per_block=6)
    for n in range(5, 121, 9):
        # An ERC721 Transfer (four topics) of a wildcard contract: skipped, counted.
        logs[n].append(
            encode_log(
                "event Transfer(address indexed from, address indexed to, uint256 indexed id)",
                {"from": "0x" + "01" * 20, "to": "0x" + "02" * 20, "id": n},
                address="0x" + "77" * 20,
            )
        )
    summaries: list[RunSummary] = []
    for tuning in (NO_WORKER, WORKER):
        chain = ScriptedChain(1, head=120, logs=logs, max_logs_per_query=25)
        async with open_rpc_server(chain) as server:
            project = make_rpc_project(
                tmp_path, schema, server.url, end_block=120, max_reorg_depth=8
            )

            async def faults(node: RpcServer = server) -> None:
                # Once the worker runs: faults the client retries, and the
                # worker hands such ranges back to the fetcher.
                while node.calls["eth_getLogs"] < 12:  # noqa: ASYNC110 - polls the server's counter
                    await trio.sleep(0.001)
                for method in ("eth_getLogs", "eth_getBlockByNumber"):
                    node.fail(method, 2, kind="http_503")
                node.fail("eth_getLogs", 1, kind="disconnect")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(faults)
                summaries.append(
                    await run(
                        project,
                        database_url,
                        reset=True,
                        chunk_logs=7,
                        rpc_tuning={**tuning, "initial_span": 16},
                    )
                )
        erc20 = [lg for lg in chain.logs(1, 120, topic0s=[TRANSFER]) if len(lg["topics"]) == 3]
        assert tables(database_url, schema) == fold(erc20)
    without, with_worker = summaries
    assert with_worker.events == without.events
    assert with_worker.skipped == without.skipped == {(1, "Token.Transfer"): 13}
    assert _worker_ranges(caplog) > 10
    assert "too large, span now" in caplog.text
    assert "in the log worker: ('other', 'HTTP 503')" in caplog.text


async def test_a_killed_worker_leaves_the_run_exact(
    tmp_path: Path, database_url: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "indexer.sources.rpc")
    rng = random.Random(4)
    chain = ScriptedChain(1, head=400, logs=random_logs(rng, range(1, 401), per_block=6))
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=400, max_reorg_depth=8)
        killed: list[int] = []

        async def kill_the_worker() -> None:
            while True:
                found = [p for p in multiprocessing.active_children() if "rpc-logs" in p.name]
                if found and found[0].pid is not None and server.calls["eth_getLogs"] > 10:
                    os.kill(found[0].pid, signal.SIGKILL)
                    killed.append(found[0].pid)
                    return
                await trio.sleep(0.001)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_the_worker)
            summary = await run(
                project,
                database_url,
                reset=True,
                chunk_logs=7,
                rpc_tuning={**WORKER, "initial_span": 2, "max_span": 2},
            )
            nursery.cancel_scope.cancel()
    assert killed, "the worker ran"
    assert "the JSON-RPC log worker ended" in caplog.text
    assert tables(database_url, schema) == expected(chain)
    assert summary.events == len(chain.logs(1, 400, topic0s=[TRANSFER]))


def _listed_project(tmp: Path, schema: str, url: str, token: str) -> Path:
    project = make_rpc_project(tmp, schema, url, end_block=60, max_reorg_depth=8)
    config = (project / "indexer.yaml").read_text()
    (project / "indexer.yaml").write_text(
        config.replace(
            "      - name: Token\n", f"      - name: Token\n        addresses: ['{token}']\n"
        )
    )
    return project


async def test_a_log_that_does_not_decode_fails_the_run_with_the_same_message(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    token = "0x" + "ab" * 20
    logs: dict[int, list[Any]] = {n: [] for n in range(1, 61)}
    for n in range(1, 61):
        logs[n].append(
            encode_log(
                "event Transfer(address indexed from, address indexed to, uint256 value)",
                {"from": "0x" + "01" * 20, "to": "0x" + "02" * 20, "value": n},
                address=token,
            )
        )
    # Block 40: the listed token's Transfer with a 4th topic: bad input, named.
    logs[40].append(
        encode_log(
            "event Transfer(address indexed from, address indexed to, uint256 indexed id)",
            {"from": "0x" + "01" * 20, "to": "0x" + "02" * 20, "id": 7},
            address=token,
        )
    )
    messages = []
    for tuning in (NO_WORKER, WORKER):
        chain = ScriptedChain(1, head=60, logs=logs)
        async with open_rpc_server(chain) as server:
            project = _listed_project(tmp_path, schema, server.url, token)
            with raised(DecodeError) as info:
                await run(
                    project, database_url, reset=True, rpc_tuning={**tuning, "initial_span": 5}
                )
        messages.append(str(leaf(info.value)))
    assert messages[0] == messages[1]
    assert "block 40 log 1" in messages[0]


def _transfer_decoder() -> Any:
    """A decoder for one wildcard ERC20 Transfer route, as the worker's child builds it."""
    from indexer.abi import parse_event_signature
    from indexer.sources._decode import DecodeRoute, LogDecoder

    spec = parse_event_signature(
        "event Transfer(address indexed from, address indexed to, uint256 value)"
    )
    return LogDecoder(1, [DecodeRoute("Token", spec, None)], keep_raw=False)


def _fetchers_parts(chain: ScriptedChain, first: int, last: int) -> Any:
    """The parts the fetcher makes of ``first..last`` (chunks of 7 logs), decoded here."""
    from indexer.sources._rpc_ranges import decode_parts, raw_logs

    headers = {n: {"timestamp": hex(chain.block(n).timestamp)} for n in range(first, last + 1)}
    return decode_parts(
        _transfer_decoder(), first, last, raw_logs("c", chain.logs(first, last), headers), 7
    )


async def test_a_prefetched_range_not_asked_for_is_discarded() -> None:
    """The answer for the range asked for, never the one prefetched for another."""
    from indexer.sources._rpc_worker import LogRequest, open_log_worker

    chain = ScriptedChain(1, head=40, logs=random_logs(random.Random(2), range(1, 41), 6))
    async with (
        open_rpc_server(chain) as server,
        open_log_worker(_transfer_decoder(), server.url, 10.0, "c", 7) as worker,
    ):
        await worker.start()
        await worker.prefetch(LogRequest(11, 20, None, (TRANSFER,), True))
        answer = await worker.fetch(LogRequest(11, 25, None, (TRANSFER,), True))
        assert answer is not None
        assert worker.discarded == 1
        assert answer.parts == _fetchers_parts(chain, 11, 25)
        assert answer.parts[-1][1] == 25
        assert answer.last_hash == chain.block(25).hash
        assert answer.first_parent == chain.block(10).hash


async def test_ctrl_c_stops_the_cli_and_its_worker_quietly(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """Ctrl+C reaches the process group: the run flushes and exits 0, the child prints nothing."""
    rng = random.Random(6)
    # 2,000 blocks with ~3,000 logs, then ~1,000 more blocks: the first range
    # starts the worker, which fetches the second.
    chain = ScriptedChain(1, head=3_000, logs=random_logs(rng, range(1, 3_001), per_block=3))
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=3_000, max_reorg_depth=8)
        handlers = (project / "handlers.py").read_text()
        # Slow handlers keep the run going while the worker fetches ahead.
        (project / "handlers.py").write_text(
            handlers.replace(
                "async def transfer(event: Event, ctx: Context) -> None:\n",
                "async def transfer(event: Event, ctx: Context) -> None:\n"
                "    await trio.sleep(0.001)\n",
            ).replace("from indexer import", "import trio\nfrom indexer import")
        )
        env = {**os.environ, "INDEXER_DATABASE_URL": database_url}
        env.pop("INDEXER_TEST_DATABASE_URL", None)
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "indexer", "run", str(project), "--no-progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        with trio.fail_after(60):
            # The worker is the CLI's child process: wait until it exists.
            while not await _has_child(proc.pid):  # noqa: ASYNC110 - polls /proc
                await trio.sleep(0.05)
            await trio.sleep(0.5)
            os.killpg(proc.pid, signal.SIGINT)
            assert proc.stdout is not None
            assert proc.stderr is not None
            out, err = b"", b""
            async with trio.open_nursery() as nursery:

                async def read(stream: Any, into: list[bytes]) -> None:
                    into.extend([chunk async for chunk in stream])

                outs: list[bytes] = []
                errs: list[bytes] = []
                nursery.start_soon(read, proc.stdout, outs)
                nursery.start_soon(read, proc.stderr, errs)
                await proc.wait()
            out, err = b"".join(outs), b"".join(errs)
    text = err.decode()
    assert proc.returncode == 0, text
    assert "stopped:" in out.decode()
    assert "Traceback" not in text
    assert "KeyboardInterrupt" not in text


async def _has_child(pid: int) -> bool:
    # A process started from a worker thread is that thread's child.
    for task in await trio.Path(f"/proc/{pid}/task").iterdir():
        if (await (task / "children").read_text()).split():
            return True
    return False


async def test_the_worker_starts_while_the_fetcher_does_the_next_ranges(
    tmp_path: Path, database_url: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The child imports for about half a second before it can answer: the
    fetcher does the first far range and the next two itself, and the child's
    first request (sent as it starts) is the range after those, so nothing
    it fetches is thrown away."""
    caplog.set_level(logging.DEBUG, "indexer.sources.rpc")
    rng = random.Random(7)
    chain = ScriptedChain(1, head=90, logs=random_logs(rng, range(1, 91), per_block=6))
    async with open_rpc_server(chain) as server:
        # Far blocks 1..81 in ranges of 6: 14 far ranges; the window (82..90:
        # the head's 8 and the block below them) in 2 more.
        project = make_rpc_project(tmp_path, schema, server.url, end_block=90, max_reorg_depth=8)
        tuning = {**WORKER, "initial_span": 6, "max_span": 6}
        await run(project, database_url, rpc_tuning=tuning, chunk_logs=7)
        assert tables(database_url, schema) == expected(chain)
    closing = [r.getMessage() for r in caplog.records if "log worker fetched" in r.getMessage()]
    assert closing == [
        # All but the fetcher's first three far ranges: 11 far, 2 in the window.
        f"chain 1 ({server.url}): the JSON-RPC log worker fetched 13 ranges "
        "(0 prefetched ones discarded)"
    ]


async def test_a_window_range_from_the_worker_equals_the_fetchers() -> None:
    """Within the reorg window the child fetches every header, then the logs, and
    answers with every block's hash and the parts the fetcher would make."""
    from indexer.sources._rpc_worker import LogRequest, open_log_worker

    chain = ScriptedChain(1, head=30, logs=random_logs(random.Random(4), range(1, 31), 6))
    async with (
        open_rpc_server(chain) as server,
        open_log_worker(_transfer_decoder(), server.url, 10.0, "c", 7) as worker,
    ):
        await worker.start()
        before = server.calls["eth_getBlockByNumber"]
        answer = await worker.fetch(LogRequest(21, 30, None, (TRANSFER,), True, window=True))
        assert answer is not None
        assert server.calls["eth_getBlockByNumber"] - before == 10  # every block's header
        assert answer.parts == _fetchers_parts(chain, 21, 30)
        assert answer.hashes == [chain.block(n).hash for n in range(21, 31)]
        assert answer.first_parent == chain.block(20).hash
        assert answer.last_hash == chain.block(30).hash
        assert answer.consistent


async def test_a_reorg_between_a_window_ranges_headers_and_its_logs(
    tmp_path: Path, database_url: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The chain is replaced after the child fetched a window range's headers and
    before its logs: the child reports the answer inconsistent, the fetcher asks
    again, finds that the range no longer follows the blocks it processed, and
    rolls back; the tables equal the new chain's."""
    caplog.set_level(logging.DEBUG, "indexer.sources.rpc")
    rng = random.Random(11)
    chain = ScriptedChain(1, head=60, logs=random_logs(rng, range(1, 61), per_block=6))
    async with open_rpc_server(chain) as server:
        asked: list[int] = []
        get_logs = server._methods["eth_getLogs"]

        def reorg_once(params: list[Any]) -> Any:
            first = int(params[0]["fromBlock"], 16)
            asked.append(first)
            if first == 46 and asked.count(46) == 1:
                chain.reorg(20, replace_logs(rng, chain, 20))  # blocks 41..60
            return get_logs(params)

        server._methods["eth_getLogs"] = reorg_once
        # Far blocks 1..29, the window 30..60, in ranges of 4.
        project = make_rpc_project(tmp_path, schema, server.url, end_block=60, max_reorg_depth=30)
        tuning = {**WORKER, "initial_span": 4, "max_span": 4}
        summary = await run(project, database_url, rpc_tuning=tuning, chunk_logs=7)
        assert tables(database_url, schema) == expected(chain)
        assert [(c, kept) for c, kept, _rows, _s in summary.rollbacks] == [(1, 40)]
    # 46..49 asked twice: inconsistent, then not following the block 45 that
    # was processed; the rollback keeps block 40, and the new feed starts at 41.
    assert asked.count(46) == 2
    assert asked[asked.index(46) + 2] == 41
    # The child's: far 13..29 in 5 ranges (the fetcher did 1..12 as it
    # started), then the window's 30..49 in 4 ranges and 46..49 twice.
    assert _worker_ranges(caplog) == 11
