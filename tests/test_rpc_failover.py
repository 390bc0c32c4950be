"""Several `rpc` URLs for one chain: failover, per-node rate limits, lagging nodes.

The end-to-end test runs the real runtime against three scripted nodes over
HTTP and compares the tables with the independent fold of the final
canonical chain.  The pool's choices are tested under Trio's mock clock
through in-process transports (real sockets let the clock jump while a read
is pending), by what each scripted node was asked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

from indexer.abi import parse_event_signature
from indexer.config import load_config
from indexer.sources import (
    BlockRange,
    DecodeRoute,
    LogDecoder,
    Reorg,
    RpcError,
    RpcPool,
    RpcSourceOptions,
    feed_rpc,
    open_rpc_pool,
)
from indexer.sources._rpc import is_beyond_head, is_range_error
from indexer.testing import RpcServer, ScriptedChain, open_rpc_server

from ._chains import (
    TRANSFER,
    CommitWatch,
    expected,
    make_rpc_project,
    random_logs,
    replace_logs,
    run,
    scripted_chain,
    tables,
)
from .test_config import base_config, load_error, make_project

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from indexer import RunSummary

KEY = "0123456789abcdef0123456789abcdef"  # an API key in a URL path: redacted everywhere
URLS = tuple(f"https://node-{name}.example/v2/{KEY}" for name in "abc")
TRANSFER_SPEC = parse_event_signature(
    "event Transfer(address indexed from, address indexed to, uint256 value)"
)


# --------------------------------------------------------------------------
# End to end: three nodes over HTTP, one dies, one lags, one rate-limits
# --------------------------------------------------------------------------


async def test_three_nodes_one_dies_one_lags_one_rate_limits(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """The run completes, with a reorg in the middle, and the tables are the exact fold."""
    end = 90
    chain, rng = scripted_chain(12, head=40)
    async with (
        open_rpc_server(chain) as dying,
        open_rpc_server(chain) as lagging,
        open_rpc_server(chain) as limited,
    ):
        lagging.lag(6)
        for server in (dying, limited):  # the lagging node ranks first wherever it can serve
            server.latency("*", 0.003)
        limited.fail("*", times=3, kind="http_429")  # its first calls, the chain id check too
        urls = [dying.url, lagging.url, limited.url]
        project = make_rpc_project(tmp_path, schema, urls, end_block=end, max_reorg_depth=10)
        # The dying node's two hangs last this long each.  At 1 s, a CI machine whose two
        # cores were busy with other tests made a healthy node miss it too, and timeouts
        # on every node read as "too large" down to a single block (a fatal error).
        tuning = {"timeout": 3.0, "initial_span": 5, "client_options": {"head_grace": 0.2}}
        watch = CommitWatch()
        done: list[RunSummary] = []
        async with trio.open_nursery() as nursery:

            async def indexer() -> None:
                done.append(
                    await run(
                        project,
                        database_url,
                        reporter=watch,
                        report_interval=0.01,
                        rpc_tuning=tuning,
                    )
                )

            nursery.start_soon(indexer)
            await watch.wait_for(chain.head)
            # Mid-run the first node dies: it hangs twice (read timeouts), then refuses.
            dying.fail("*", times=2, kind="timeout")
            dying.fail("*", times=10**9, kind="disconnect")
            limited.fail("*", times=4, kind="http_429")
            chain.advance(12, random_logs(rng, range(chain.head + 1, chain.head + 13)))
            await watch.wait_for(chain.head)
            # A reorg below the tip; the lagging node falls further behind at once, so
            # blocks it had served are missing from it now, while the others have them.
            chain.reorg(4, replace_logs(rng, chain, 4))
            lagging.lag(15)
            limited.fail(
                "eth_getLogs", times=2, kind="rpc_error", code=-32005, message="rate limit exceeded"
            )
            limited.fail("eth_getBlockByNumber", times=3, kind="http_429")
            chain.advance(end - chain.head, random_logs(rng, range(chain.head + 1, end + 1)))
    (summary,) = done
    assert summary.rollbacks, "the reorg below the tip was not rolled back"
    assert tables(database_url, schema) == expected(chain, end)
    assert min(s.calls["eth_blockNumber"] for s in (dying, lagging, limited)) > 0
    assert limited.calls["eth_getLogs"] > 0
    assert lagging.calls["eth_getLogs"] > 0


# --------------------------------------------------------------------------
# The pool's choices, under the mock clock
# --------------------------------------------------------------------------


def servers(chain: ScriptedChain, count: int = 3) -> list[RpcServer]:
    return [RpcServer(chain) for _ in range(count)]


def pool_of(nodes: Sequence[RpcServer], **kw: Any) -> Any:
    transports = {url: node.transport() for url, node in zip(URLS, nodes, strict=False)}
    options: dict[str, Any] = {"chain_id": 1, "backoff_base": 0.5, "backoff_cap": 4.0, **kw}
    return open_rpc_pool(URLS[: len(nodes)], transports=transports, **options)


async def logs_of(pool: RpcPool, first: int, last: int) -> list[dict[str, Any]]:
    return await pool.get_logs(first, last, addresses=None, topic0s=[TRANSFER])


def canonical(chain: ScriptedChain, first: int, last: int) -> list[dict[str, Any]]:
    return chain.logs(first, last, topic0s=[TRANSFER])


async def test_the_highest_head_is_followed_and_a_lagging_node_serves_only_below_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain, _rng = scripted_chain(1, head=50)
    fast_lagging, slow = servers(chain, 2)
    fast_lagging.lag(10)
    slow.latency("*", 0.2)  # so the lagging node ranks first wherever it can serve
    async with pool_of([fast_lagging, slow]) as pool:
        await pool.check_chain_id()
        assert await pool.block_number() == 50
        assert await logs_of(pool, 1, 40) == canonical(chain, 1, 40)
        assert (fast_lagging.calls["eth_getLogs"], slow.calls["eth_getLogs"]) == (1, 0)
        assert await logs_of(pool, 41, 50) == canonical(chain, 41, 50)
        assert (fast_lagging.calls["eth_getLogs"], slow.calls["eth_getLogs"]) == (1, 1)
        (header,) = await pool.get_blocks([50])
        assert header is not None
        assert fast_lagging.calls["eth_getBlockByNumber"] == 1  # the batch with its logs only


async def test_a_node_that_falls_behind_is_lagging_for_blocks_the_others_have(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Its head was read before it fell back: the missing blocks go elsewhere, never as None."""
    chain, _rng = scripted_chain(2, head=50)
    first, second = servers(chain, 2)
    second.latency("*", 0.2)
    async with pool_of([first, second]) as pool:
        assert await pool.block_number() == 50
        first.lag(20)  # a restart from an older snapshot, say
        headers = await pool.get_blocks([35, 50])
        assert [h["hash"] if h else None for h in headers] == [
            chain.block(35).hash,
            chain.block(50).hash,
        ]
        # Logs it would clamp at its head (losing the rest) go to the node that has them.
        before = second.calls["eth_getLogs"]
        assert await logs_of(pool, 20, 50) == canonical(chain, 20, 50)
        assert second.calls["eth_getLogs"] == before + 1
        # Below its (now known) head it serves again.
        assert await logs_of(pool, 1, 30) == canonical(chain, 1, 30)
        assert first.calls["eth_getLogs"] >= 1
        # A block no node has is None: that, and only that, is a shorter chain (or all lag).
        assert await pool.get_blocks([51]) == [None]


async def test_a_rate_limit_backs_off_that_node_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain, _rng = scripted_chain(3, head=20)
    limited, other = servers(chain, 2)
    other.latency("*", 0.05)
    async with pool_of([limited, other]) as pool:
        await pool.check_chain_id()
        limited.fail("eth_getLogs", times=1, kind="http_429")
        limited.fail(
            "eth_getLogs", times=1, kind="rpc_error", code=-32005, message="rate limit exceeded"
        )
        start = trio.current_time()
        assert await logs_of(pool, 1, 10) == canonical(chain, 1, 10)
        # The other node answered at once: nothing waited for the limited node's cool-down.
        assert trio.current_time() - start == pytest.approx(0.05)
        assert other.calls["eth_getLogs"] == 1
        # While it cools down, everything goes to the other node.
        for _ in range(3):
            await logs_of(pool, 1, 10)
        assert limited.calls["eth_getLogs"] == 1
        assert other.calls["eth_getLogs"] == 4
        # Rested, it answers the next head poll, and ranks first again (faster, listed first).
        await trio.sleep(10)
        assert await pool.block_number() == 20
        assert await logs_of(pool, 11, 20) == canonical(chain, 11, 20)
        assert limited.calls["eth_getLogs"] == 2


async def test_a_dead_node_is_retried_later_not_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain, _rng = scripted_chain(4, head=20)
    dead, alive = servers(chain, 2)
    alive.latency("*", 0.05)
    async with pool_of([dead, alive]) as pool:
        await pool.check_chain_id()
        dead.fail("*", times=2, kind="disconnect")
        for _ in range(3):
            assert await logs_of(pool, 1, 20) == canonical(chain, 1, 20)
            assert await pool.block_number() == 20
            await trio.sleep(5)
        # Its failures used up, the head polls found it answering again: it ranks first again.
        dead_before = dead.calls["eth_getLogs"]
        await logs_of(pool, 1, 20)
        assert dead.calls["eth_getLogs"] == dead_before + 1


async def test_every_node_failing_gives_up_naming_them_redacted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain, _rng = scripted_chain(5, head=20)
    nodes = servers(chain, 3)
    async with pool_of(nodes, max_attempts=2) as pool:
        await pool.check_chain_id()
        for node in nodes:
            node.fail("*", times=10**6, kind="http_503")
        with pytest.raises(RpcError) as info:
            await logs_of(pool, 1, 20)
    message = str(info.value)
    assert "failed on every node" in message
    assert "gave up after 6 attempts" in message
    assert KEY not in message
    assert all(url.replace(KEY, "***") in message for url in URLS)


async def test_a_node_of_another_chain_is_named(autojump_clock: trio.testing.MockClock) -> None:
    chain = ScriptedChain(1, head=5)
    other = ScriptedChain(10, head=5)
    async with pool_of([RpcServer(chain), RpcServer(other)]) as pool:
        with pytest.raises(RpcError) as info:
            await pool.check_chain_id()
    message = str(info.value)
    assert "rpc[1]" in message
    assert "serves chain 10" in message
    assert KEY not in message


async def test_a_slow_node_does_not_hold_the_head_poll(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain, _rng = scripted_chain(6, head=20)
    fast, hanging = servers(chain, 2)
    async with pool_of([fast, hanging], head_grace=0.5) as pool:
        await pool.check_chain_id()
        hanging.fail("*", times=10**6, kind="timeout")
        start = trio.current_time()
        assert await pool.block_number() == 20
        assert trio.current_time() - start == pytest.approx(0.5)


# --------------------------------------------------------------------------
# The fetcher: a node's "beyond current head" is not "range too large"
# --------------------------------------------------------------------------


async def collect(
    options: RpcSourceOptions,
    first: int = 1,
    *,
    stored: dict[int, str] | None = None,
    seen: Callable[[BlockRange | Reorg], None] | None = None,
) -> list[BlockRange | Reorg]:
    """What feed_rpc sends until it ends (the end block, or a Reorg); `seen` on arrival."""
    send, receive = trio.open_memory_channel[BlockRange | Reorg](2)
    decoder = LogDecoder(1, [DecodeRoute("ERC20", TRANSFER_SPEC, None)], keep_raw=False)
    got: list[BlockRange | Reorg] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed_rpc, options, decoder, first, stored or {}, send)
        with receive:
            async for message in receive:
                got.append(message)
                if seen is not None:
                    seen(message)
    return got


def source_options(urls: Sequence[str], transports: dict[str, Any], **kw: Any) -> RpcSourceOptions:
    client: dict[str, Any] = {"backoff_base": 0.5, "backoff_cap": 4.0}
    if len(urls) > 1:
        client["transports"] = transports
    else:
        client["transport"] = transports[urls[0]]
    fields: dict[str, Any] = {"chain_id": 1, "poll_interval": 1.0, "max_reorg_depth": 5}
    return RpcSourceOptions(url=urls[0], urls=tuple(urls), client_options=client, **(fields | kw))


@pytest.mark.parametrize("count", [1, 2])
async def test_beyond_the_head_is_polled_again_not_halved(
    autojump_clock: trio.testing.MockClock, count: int
) -> None:
    """-32602 "block range extends beyond current head block" used to end the run fatally."""
    chain, _rng = scripted_chain(7, head=30)
    nodes = servers(chain, count)
    for node in nodes:
        node.fail(
            "eth_getLogs",
            times=3,
            kind="rpc_error",
            code=-32602,
            message="block range extends beyond current head block",
        )
    transports = {url: node.transport() for url, node in zip(URLS, nodes, strict=False)}
    got = await collect(source_options(URLS[:count], transports, end_block=30))
    ranges = [m for m in got if isinstance(m, BlockRange)]
    assert ranges[0].first == 1
    assert ranges[-1].last == 30
    assert sum(len(r.logs) for r in ranges) == len(canonical(chain, 1, 30))


async def test_a_missing_tip_on_lagging_nodes_is_not_a_reorg(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The node that served the tip dies; the others lag: wait for them, no rollback."""
    chain, _rng = scripted_chain(8, head=30)
    ahead, behind = servers(chain, 2)
    behind.lag(4)
    transports = {URLS[0]: ahead.transport(), URLS[1]: behind.transport()}
    options = source_options(URLS[:2], transports, end_block=40)
    caplog.set_level(logging.WARNING, "indexer.sources")

    async def script() -> None:
        await trio.sleep(5)  # caught up at 30, polling every second
        assert ahead.calls["eth_getLogs"] > 0
        assert behind.calls["eth_blockNumber"] >= 3
        ahead.fail("*", times=10**6, kind="disconnect")
        await trio.sleep(30)
        chain.advance(14)  # the lagging node reaches 40, then the run's end

    async with trio.open_nursery() as nursery:
        nursery.start_soon(script)
        got = await collect(options)
    assert not [m for m in got if isinstance(m, Reorg)]
    assert [m for m in got if isinstance(m, BlockRange)][-1].last == 40
    assert "reorg" not in caplog.text


async def test_a_shorter_chain_is_rolled_back_before_it_grows_past_the_old_tip(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Both nodes go back to a shorter fork: roll back now, not once the chain regrows.

    The node that served the tip answers without it, so its own chain went back.
    (Before RpcPool.get_tip a missing tip was always waited for: the reorg was seen
    only when the chain grew past block 30 again.)
    """
    chain, _rng = scripted_chain(9, head=30)
    ahead, behind = servers(chain, 2)
    behind.lag(3)
    transports = {URLS[0]: ahead.transport(), URLS[1]: behind.transport()}
    options = source_options(URLS[:2], transports, end_block=40)
    heads: list[int] = []  # the chain's head as each message arrived

    async def script() -> None:
        await trio.sleep(5)  # caught up at 30, polling every second
        assert heads == [30] * len(heads)
        chain.reorg(5, length=2)  # blocks 26..30 become 26', 27': head 27
        await trio.sleep(60)
        chain.advance(13)  # past the old tip; the run's end

    async with trio.open_nursery() as nursery:
        nursery.start_soon(script)
        got = await collect(options, seen=lambda _: heads.append(chain.head))
    assert isinstance(got[-2], BlockRange)
    assert got[-2].last == 30
    assert got[-1] == Reorg(1, 25, 30)
    assert heads[-1] == 27, "the shorter chain was noticed only once it grew past the old tip"


@pytest.mark.parametrize("lagging", [0, 2])
async def test_a_shorter_chain_after_the_end_block_is_rolled_back_on_restart(
    autojump_clock: trio.testing.MockClock, lagging: int
) -> None:
    """A run that already reached its end_block, restarted after the chain went back.

    A fresh pool knows no node's history: every node answering without the stored tip
    is a shorter chain (if they merely lagged, the blocks rolled back would be
    fetched again once they have them).
    """
    chain, _rng = scripted_chain(10, head=30)
    stored = {n: chain.block(n).hash for n in range(24, 31)}
    chain.reorg(5, length=3)  # 26'..28': head 28, below the stored tip 30
    nodes = servers(chain, 2)
    nodes[1].lag(lagging)
    transports = {url: node.transport() for url, node in zip(URLS, nodes, strict=False)}
    options = source_options(URLS[:2], transports, end_block=30)
    assert await collect(options, 31, stored=stored) == [Reorg(1, 25, 30)]


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


def test_a_list_of_urls_is_loaded_in_order(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["source"] = {"rpc": list(URLS)}
    source = load_config(make_project(tmp_path, config), environ={}).chains[0].source
    assert source.rpc_urls == URLS
    assert source.rpc == URLS[0]


@pytest.mark.parametrize(
    ("rpc", "path", "wanted"),
    [
        ([], "chains[0].source.rpc", "empty list"),
        (["http://a", "ftp://b"], "chains[0].source.rpc[1]", "not an http:// or https:// URL"),
        (["http://a", 5], "chains[0].source.rpc[1]", "must be a string"),
        ([URLS[0], URLS[1], URLS[0]], "chains[0].source.rpc[2]", "already rpc[0]"),
        ([f"http://user:{KEY}@a", f"ws://user:{KEY}@b"], "chains[0].source.rpc[1]", "not an http"),
    ],
)
def test_bad_url_lists_name_the_entry(tmp_path: Path, rpc: Any, path: str, wanted: str) -> None:
    config = base_config()
    config["chains"][0]["source"] = {"rpc": rpc}
    message = load_error(tmp_path, config)
    assert f"indexer.yaml: {path}:" in message
    assert wanted in message
    assert KEY not in message


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (-32602, "block range extends beyond current head block"),
        (-32602, "BlockOutOfRangeError: block height is 10 but requested was 12"),
    ],
)
def test_beyond_the_head_is_not_a_range_error(code: int, message: str) -> None:
    assert is_beyond_head(code, message)
    assert not is_range_error(code, message)


def test_a_lagging_server_serves_the_chain_as_of_its_older_head() -> None:
    chain, _rng = scripted_chain(9, head=30)
    server = RpcServer(chain)
    server.lag(5)
    assert server.head == 25
    assert server._methods["eth_blockNumber"]([]) == hex(25)
    assert server._get_block_by_number([hex(26), False]) is None
    assert server._get_block_by_hash([chain.block(26).hash, False]) is None
    assert server._get_logs([{"fromBlock": "0x1", "toBlock": hex(30)}]) == chain.logs(1, 25)
    server.lag(0)
    assert server._get_block_by_number([hex(30), False]) is not None
