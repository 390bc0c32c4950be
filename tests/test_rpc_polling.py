"""Following a chain under Trio's mock clock: polling, backoff, reorgs, rollback ordering.

Every test talks to the scripted chain through ``RpcServer.transport()`` (no
sockets), so ``autojump_clock`` makes virtual time exact: a poll interval,
a backoff sleep or a slow write take exactly their seconds, and no real time.
"""

from __future__ import annotations

import itertools
import logging
import random
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
import trio
import trio.testing

from indexer import (
    ReorgTooDeepError,
    RunOptions,
    load_config,
    load_handlers,
    run_project,
)
from indexer.abi import parse_event_signature
from indexer.sources import BlockRange, DecodeRoute, LogDecoder, Reorg, RpcSourceOptions, feed_rpc
from indexer.testing import RpcServer

from ._chains import (
    TRANSFER,
    expected,
    make_rpc_project,
    random_logs,
    replace_logs,
    scripted_chain,
    tables,
)
from ._projects import raised

if TYPE_CHECKING:
    from pathlib import Path

    from indexer.persist import Changeset

Message = BlockRange | Reorg
URL = "http://scripted/"  # never dialled: the transport answers
TRANSFER_SPEC = parse_event_signature(
    "event Transfer(address indexed from, address indexed to, uint256 value)"
)
assert TRANSFER_SPEC.topic0 == TRANSFER
# Block number and log index in a decoded log's Event fields.
_NUMBER, _INDEX = 5, 6
POLL = 2.0


class Budget(httpx.AsyncBaseTransport):
    """Passes requests on, failing the test past ``limit`` of them.

    Under the autojump clock a fetcher that polls without sleeping would never
    let virtual time advance, and the test would hang instead of failing.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int = 400) -> None:
        self.inner = inner
        self.limit = limit
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.requests > self.limit:
            raise AssertionError(f"more than {self.limit} requests: polling in a busy loop?")
        return await self.inner.handle_async_request(request)


def options(server: RpcServer, **kw: Any) -> RpcSourceOptions:
    client_options = {"transport": Budget(server.transport()), **kw.pop("client_options", {})}
    fields: dict[str, Any] = {
        "url": URL,
        "chain_id": 1,
        "poll_interval": POLL,
        "max_reorg_depth": 5,
        "end_block": None,
        **kw,
    }
    return RpcSourceOptions(**fields, client_options=client_options)


class Feed:
    """Runs ``feed_rpc`` and records every message with the virtual time it arrived."""

    def __init__(self, options: RpcSourceOptions) -> None:
        self.options = options
        self.got: list[tuple[float, Message]] = []
        self.closed_at: float | None = None
        self._changed = trio.Event()

    async def run(self, first_block: int = 1) -> None:
        send, receive = trio.open_memory_channel[Message](2)
        async with trio.open_nursery() as nursery:
            decoder = LogDecoder(
                self.options.chain_id, [DecodeRoute("ERC20", TRANSFER_SPEC, None)], keep_raw=False
            )
            nursery.start_soon(feed_rpc, self.options, decoder, first_block, {}, send)
            with receive:
                async for message in receive:
                    self.got.append((trio.current_time(), message))
                    self._notify()
        self.closed_at = trio.current_time()
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        """Wait for the next message, or the end of the feed."""
        await self._changed.wait()

    @property
    def ranges(self) -> list[BlockRange]:
        return [m for _t, m in self.got if isinstance(m, BlockRange)]

    @property
    def covered(self) -> int:
        return max((r.last for r in self.ranges), default=0)

    def arrival(self, block: int) -> float:
        return next(
            t for t, m in self.got if isinstance(m, BlockRange) and m.first <= block <= m.last
        )

    async def wait_for(self, block: int) -> None:
        with trio.fail_after(60):
            while self.covered < block:
                await self.changed()


def log_keys(ranges: list[BlockRange]) -> list[tuple[int, int]]:
    return [(fields[_NUMBER], fields[_INDEX]) for r in ranges for _route, fields, _raw in r.logs]


def chain_log_keys(server: RpcServer, last: int) -> list[tuple[int, int]]:
    logs = server.chain.logs(1, last, topic0s=[TRANSFER])
    return [(int(lg["blockNumber"], 16), int(lg["logIndex"], 16)) for lg in logs]


def assert_contiguous(ranges: list[BlockRange], first: int, last: int) -> None:
    assert ranges[0].first == first
    for before, after in itertools.pairwise(ranges):
        assert after.first == before.last + 1
    assert ranges[-1].last == last


# --------------------------------------------------------------------------
# The in-process transport
# --------------------------------------------------------------------------


async def _post(client: httpx.AsyncClient, method: str, *params: Any) -> httpx.Response:
    payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    return await client.post(URL, content=orjson.dumps(payload))


async def test_transport_answers_and_fails_as_scripted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain, _rng = scripted_chain(10, head=12)
    server = RpcServer(chain)  # never listening: the transport is the only way in
    assert server.url == ""
    server.fail("eth_blockNumber", kind="http_503")
    server.fail("eth_chainId", kind="rpc_error", code=-32010, message="nope")
    server.fail("eth_getLogs", kind="disconnect")
    server.fail("eth_getBlockByNumber", kind="timeout")
    async with httpx.AsyncClient(transport=server.transport(), timeout=7) as client:
        response = await _post(client, "eth_blockNumber")
        assert response.status_code == 503
        assert response.text == "scripted HTTP 503\n"
        response = await _post(client, "eth_blockNumber")
        assert response.json() == {"jsonrpc": "2.0", "id": 1, "result": "0xc"}
        assert (await _post(client, "eth_chainId")).json()["error"] == {
            "code": -32010,
            "message": "nope",
        }
        with pytest.raises(httpx.RemoteProtocolError):
            await _post(client, "eth_getLogs", {"fromBlock": "0x1", "toBlock": "0xc"})
        logs = (await _post(client, "eth_getLogs", {"fromBlock": "0x1", "toBlock": "0xc"})).json()
        assert logs["result"] == chain.logs(1, 12)
        start = trio.current_time()
        with pytest.raises(httpx.ReadTimeout):
            await _post(client, "eth_getBlockByNumber", "0x3", False)
        assert trio.current_time() - start == 7  # the client's read timeout, exactly
        block = (await _post(client, "eth_getBlockByNumber", "0x3", False)).json()["result"]
        assert block["hash"] == chain.block(3).hash
        server.latency("*", 2.5)
        start = trio.current_time()
        assert (await _post(client, "eth_chainId")).json()["result"] == "0x1"
        assert trio.current_time() - start == 2.5
        server.latency("*", 9)  # longer than the read timeout
        with pytest.raises(httpx.ReadTimeout):
            await _post(client, "eth_chainId")
        assert (await client.get(URL)).status_code == 405
    assert server.calls == {
        "eth_blockNumber": 2,
        "eth_chainId": 3,
        "eth_getLogs": 2,
        "eth_getBlockByNumber": 2,
    }


# --------------------------------------------------------------------------
# The fetcher
# --------------------------------------------------------------------------


async def test_new_blocks_arrive_within_a_poll_interval_without_busy_polling(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain, rng = scripted_chain(11, head=10)
    server = RpcServer(chain)
    feed = Feed(options(server))
    created: dict[int, float] = {}
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(feed.run)
        await feed.wait_for(10)
        assert feed.arrival(10) == start  # catching up waits for nothing
        # Blocks land between polls, two within one interval, one right on a poll.
        for offset in (3.3, 4.1, 9.7, 9.9, 16.0, 21.5):
            await trio.sleep_until(start + offset)
            chain.advance(1, random_logs(rng, [chain.head + 1]))
            created[chain.head] = trio.current_time()
        await feed.wait_for(chain.head)
        # Caught up: about one eth_blockNumber per poll interval, not a busy loop.
        before, idle_from = server.calls["eth_blockNumber"], trio.current_time()
        await trio.sleep(40)
        idle_calls = server.calls["eth_blockNumber"] - before
        idle_seconds = trio.current_time() - idle_from
        nursery.cancel_scope.cancel()
    for block, at in created.items():
        assert 0 <= feed.arrival(block) - at <= POLL, block
    assert feed.arrival(11) > created[11]  # landed between polls: waited for the next
    assert idle_seconds / POLL - 1 <= idle_calls <= idle_seconds / POLL + 1
    assert not any(isinstance(m, Reorg) for _t, m in feed.got)
    assert_contiguous(feed.ranges, 1, 16)
    assert log_keys(feed.ranges) == chain_log_keys(server, 16)


async def test_transient_failures_back_off_within_the_caps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain, _rng = scripted_chain(12, head=30)
    server = RpcServer(chain)
    server.fail("eth_getLogs", times=3, kind="http_503")
    seed = 5
    opts = options(
        server,
        end_block=30,
        client_options={"backoff_base": 1.0, "rng": random.Random(seed)},
    )
    feed = Feed(opts)
    start = trio.current_time()
    await feed.run()
    delay = feed.got[0][0] - start
    # Three retries: full-jitter sleeps below 1, 2 and 4 seconds, from the given rng.
    jitter = random.Random(seed)
    assert delay == pytest.approx(sum(jitter.uniform(0, bound) for bound in (1.0, 2.0, 4.0)))
    assert 0 < delay <= 1 + 2 + 4
    assert server.calls["eth_getLogs"] == 3 + 2  # the far range (after retries) + the window
    assert feed.closed_at == feed.got[-1][0]  # end_block reached: the fetcher returned
    assert_contiguous(feed.ranges, 1, 30)
    assert log_keys(feed.ranges) == chain_log_keys(server, 30)


async def test_a_timed_out_get_logs_is_asked_again_for_less(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain, _rng = scripted_chain(13, head=30)
    server = RpcServer(chain)
    server.fail("eth_getLogs", kind="timeout")
    feed = Feed(options(server, end_block=30, timeout=5.0))
    start = trio.current_time()
    await feed.run()
    assert feed.got[0][0] - start == 5.0  # the client's read timeout, then no backoff
    assert feed.ranges[0].last < 25  # the far part (1..25) split after the timeout
    assert_contiguous(feed.ranges, 1, 30)
    assert log_keys(feed.ranges) == chain_log_keys(server, 30)


@pytest.mark.parametrize("grow", [0, 1])
async def test_reorg_is_reported_at_the_newest_kept_block_and_ends_the_fetcher(
    autojump_clock: trio.testing.MockClock, grow: int
) -> None:
    """A reorg of the tip is found by re-reading it (grow=0) or by a new block's parent."""
    chain, rng = scripted_chain(14, head=20)
    server = RpcServer(chain)
    feed = Feed(options(server))
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed.run)
            await feed.wait_for(20)
            await trio.sleep(3.3)
            chain.reorg(2, replace_logs(rng, chain, 2))
            chain.advance(grow)
            reorged_at = trio.current_time()
            # The nursery ends only because the fetcher returns after the Reorg.
    at, last = feed.got[-1]
    assert last == Reorg(1, 18, 20)
    assert 0 < at - reorged_at <= POLL
    assert feed.closed_at == at
    assert [m for _t, m in feed.got[:-1] if isinstance(m, Reorg)] == []
    assert feed.covered == 20


async def test_reorg_deeper_than_the_window_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain, rng = scripted_chain(15, head=20)
    server = RpcServer(chain)
    feed = Feed(options(server))
    with (
        trio.fail_after(120),
        raised(ReorgTooDeepError, match=r"max_reorg_depth=5"),
    ):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed.run)
            await feed.wait_for(20)
            chain.reorg(8, replace_logs(rng, chain, 8))
    assert not any(isinstance(m, Reorg) for _t, m in feed.got)
    assert feed.covered == 20


async def test_reorg_then_more_than_a_window_of_new_blocks_is_not_missed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Blocks 19..20 are replaced while the fetcher sleeps, then 10 blocks land (window: 5).

    Blocks 21..25 are then a "far" range, fetched without headers; the
    fetcher must still notice that 21's parent is not the block 20 it sent,
    and report the reorg (or refuse it as too deep), never carry on from a
    block 20 that is no longer canonical.
    """
    chain, rng = scripted_chain(17, head=20)
    server = RpcServer(chain)
    feed = Feed(options(server))
    too_deep = False
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed.run)
            await feed.wait_for(20)
            seen = len(feed.got)
            chain.reorg(2, replace_logs(rng, chain, 2))
            chain.advance(10)
            with trio.fail_after(60):
                while feed.closed_at is None and feed.covered < 30:
                    await feed.changed()
            nursery.cancel_scope.cancel()
    except* ReorgTooDeepError:
        too_deep = True
    if not too_deep:
        assert isinstance(feed.got[seen][1], Reorg), feed.got[seen][1][:3]


# --------------------------------------------------------------------------
# The runtime: drain the writer, then roll back in a transaction of its own
# --------------------------------------------------------------------------


class _Times(logging.Handler):
    """Records ``(name, virtual time)`` of the fetcher's and the runtime's reorg warnings."""

    def __init__(self, events: list[tuple[str, float]]) -> None:
        super().__init__(logging.WARNING)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "reorg detected" in message:
            self.events.append(("detected", trio.current_time()))
        elif "reorganised" in message:
            self.events.append(("rolled_back", trio.current_time()))


async def test_rollback_waits_for_the_write_in_flight_then_runs_alone(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, database_url: str, schema: str
) -> None:
    chain, rng = scripted_chain(16, head=30)
    server = RpcServer(chain)
    project = make_rpc_project(
        tmp_path, schema, URL, end_block=45, max_reorg_depth=10, poll_interval=1.0
    )
    # Every write step, rollback step, slow-write start and reorg warning, in order.
    events: list[tuple[str, float]] = []
    reorged: list[float] = []

    async def slow_write(write: Changeset) -> None:
        events.append(("pre_write", trio.current_time()))
        block = write.chains[1].block if 1 in write.chains else 0
        if not reorged and block >= 30:
            # The tip reorganises while this write is in flight (and grows by
            # less than the window, so the replaced blocks are still in it).
            chain.reorg(3, replace_logs(rng, chain, 3))
            chain.advance(5, random_logs(rng, range(31, 36)))
            reorged.append(trio.current_time())
        elif reorged and block >= 35 and chain.head < 45:
            chain.advance(10, random_logs(rng, range(36, 46)))  # on to the end block
        await trio.sleep(5)

    def fault(step: str) -> None:  # runs in the writer's worker thread
        events.append((step, trio.from_thread.run_sync(trio.current_time)))

    config = load_config(project)
    opts = RunOptions(
        database_url=database_url,
        handle_signals=False,
        write_interval=0.0,
        pre_write=slow_write,
        fault=fault,
        rpc_tuning={"client_options": {"transport": Budget(server.transport(), 2000)}},
    )
    handler = _Times(events)
    loggers = [logging.getLogger(name) for name in ("indexer.sources.rpc", "indexer.runtime")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        # No trio.fail_after here: while PostgreSQL works in a thread, the
        # autojump clock skips to the next deadline, and that would be it.
        summary = await run_project(config, load_handlers(config), opts)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)

    steps = [name for name, _t in events]
    times = [t for _name, t in events]
    (reorged_at,) = reorged
    assert steps.count("detected") == steps.count("rollback") == 1
    detected, rollback = steps.index("detected"), steps.index("rollback")
    # The write that was in flight: its slow start scripted the reorg, the
    # fetcher saw it within a poll, and that write committed only afterwards.
    in_flight = max(i for i in range(detected) if steps[i] == "pre_write")
    assert times[in_flight] == reorged_at
    assert reorged_at < times[detected] <= reorged_at + 1.0
    assert "commit" in steps[detected:rollback]
    # Drain first: every write begun before the rollback was committed before it.
    before = steps[:rollback]
    assert before.count("pre_write") == before.count("begin") == before.count("commit") >= 1
    last_commit = max(i for i in range(rollback) if steps[i] == "commit")
    assert times[last_commit] >= reorged_at + 5  # after the in-flight write's slow start
    assert times[rollback] >= times[last_commit]
    # Then the rollback transaction alone: nothing of a write between its steps.
    assert steps[rollback + 1] == "commit"
    assert steps[rollback + 2] == "rolled back"  # the fault hook's step after COMMIT
    assert steps[rollback + 3] == "rolled_back"  # the runtime's warning
    assert "pre_write" in steps[rollback + 4 :]  # processing went on after it
    assert [(c, b) for c, b, _rows, _s in summary.rollbacks] == [(1, 27)]
    assert tables(database_url, schema) == expected(chain, 45)


async def test_a_refused_span_is_not_grown_back_into_again_and_again(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """After "too many results" at a span, growth stops short of it for a while.

    Growing straight back to a refused span (double after three successes)
    made one request in four a refusal on an evenly dense chain; each costs
    the node the whole query and the fetcher a round trip.
    """
    chain, _rng = scripted_chain(31, head=1_200, max_logs_per_query=40)
    server = RpcServer(chain)
    feed = Feed(options(server, end_block=1_150, max_reorg_depth=0, initial_span=64))
    caplog.set_level(logging.INFO, "indexer.sources.rpc")
    await feed.run()
    assert_contiguous(feed.ranges, 1, 1_150)
    assert log_keys(feed.ranges) == chain_log_keys(server, 1_150)
    refusals = caplog.text.count("too large, span now")
    requests = server.calls.get("eth_getLogs", 0)
    print(f"{refusals} refusals in {requests} eth_getLogs")
    assert refusals * 8 <= requests, (refusals, requests)
