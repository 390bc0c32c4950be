"""Tests for `indexer.testing`: the scripted chain and its JSON-RPC server."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio

from indexer.sources import LogFilter, RawLog, read_log_file
from indexer.testing import (
    ZERO_HASH,
    LogSpec,
    RpcServer,
    ScriptedChain,
    open_rpc_server,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

_DATA = Path(__file__).resolve().parent.parent / "examples" / "erc20" / "data"
_GZ = _DATA / "ethereum_mainnet_all_logs_18426253_18426303.getlogs.jsonl.gz"
_PARQUET = Path("/work/shared/data/ethereum_mainnet_all_logs_18426253_18426303.cryo.parquet")
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
APPROVAL = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
TOKEN_A = "0x" + "aa" * 20
TOKEN_B = "0x" + "bb" * 20
ALICE = "0x" + "0" * 24 + "11" * 20
BOB = "0x" + "0" * 24 + "22" * 20


def _transfer(token: str = TOKEN_A, amount: int = 1, *, to: str = BOB) -> LogSpec:
    return LogSpec(token, (TRANSFER, ALICE, to), f"0x{amount:064x}")


def _approval(token: str = TOKEN_A) -> LogSpec:
    return LogSpec(token, (APPROVAL, ALICE, BOB), "0x" + "00" * 32)


def _sample_chain(**kw: Any) -> ScriptedChain:
    return ScriptedChain(
        1,
        head=20,
        logs={
            3: [_transfer(TOKEN_A, 1), _approval(TOKEN_B), _transfer(TOKEN_B, 2)],
            7: [_transfer(TOKEN_A, 3, to=ALICE)],
            15: [_approval(TOKEN_A), _transfer(TOKEN_A, 4)],
        },
        **kw,
    )


def _hashes(chain: ScriptedChain) -> list[str]:
    return [chain.block(n).hash for n in range(chain.head + 1)]


# --------------------------------------------------------------------------
# The chain model
# --------------------------------------------------------------------------


def test_blocks_chain_by_hash_with_timestamps() -> None:
    chain = ScriptedChain(5, head=10, genesis_timestamp=1000, block_time=2)
    hashes = _hashes(chain)
    assert len(set(hashes)) == 11
    assert chain.block(0).parent_hash == ZERO_HASH
    for n in range(1, 11):
        block = chain.block(n)
        assert block.parent_hash == hashes[n - 1]
        assert block.timestamp == 1000 + 2 * n
        assert len(block.hash) == 66
        assert block.hash == block.hash.lower()
        int(block.hash, 16)
    # Deterministic, and the chain id is part of the hash.
    assert _hashes(ScriptedChain(5, head=10)) == hashes
    assert ScriptedChain(6, head=10).block(3).hash != hashes[3]
    with pytest.raises(KeyError):
        chain.block(11)
    with pytest.raises(KeyError):
        chain.block(-1)


def test_logs_change_the_block_hash() -> None:
    plain = ScriptedChain(1, head=5)
    with_log = ScriptedChain(1, head=5, logs={3: [_transfer()]})
    assert _hashes(plain)[:3] == _hashes(with_log)[:3]
    assert plain.block(3).hash != with_log.block(3).hash
    assert with_log.block(4).parent_hash == with_log.block(3).hash


def test_advance_appends_blocks_and_checks_log_heights() -> None:
    chain = ScriptedChain(1, head=2)
    before = _hashes(chain)
    chain.advance(3, {4: [_transfer()]})
    assert chain.head == 5
    assert _hashes(chain)[:3] == before
    assert chain.block(4).logs == (_transfer(),)
    assert chain.block(3).parent_hash == before[2]
    with pytest.raises(ValueError, match="outside the new blocks"):
        chain.advance(1, {5: [_transfer()]})
    with pytest.raises(ValueError, match="outside the new blocks"):
        chain.advance(1, {7: [_transfer()]})
    assert chain.head == 5  # a rejected call changes nothing


def test_reorg_replaces_the_last_blocks_with_new_hashes() -> None:
    chain = _sample_chain()
    before = _hashes(chain)
    chain.reorg(8)  # blocks 13..20, including block 15 whose logs go away
    after = _hashes(chain)
    assert chain.head == 20
    assert after[:13] == before[:13]
    assert all(after[n] != before[n] for n in range(13, 21))
    assert chain.block(13).parent_hash == before[12]
    for n in range(1, 21):
        assert chain.block(n).parent_hash == after[n - 1]
    assert chain.block(15).logs == ()
    assert [log["blockNumber"] for log in chain.logs(0, 20)] == ["0x3"] * 3 + ["0x7"]
    assert chain.block_by_hash(before[15]) is None
    assert chain.block_by_hash(after[15]) == chain.block(15)


def test_reorg_with_the_same_logs_still_changes_hashes() -> None:
    chain = _sample_chain()
    before = _hashes(chain)
    chain.reorg(6, {15: [_approval(TOKEN_A), _transfer(TOKEN_A, 4)]})
    assert chain.block(15).logs == (_approval(TOKEN_A), _transfer(TOKEN_A, 4))
    assert all(chain.block(n).hash != before[n] for n in range(15, 21))
    # A second reorg gives yet other hashes.
    middle = _hashes(chain)
    chain.reorg(1)
    assert chain.block(20).hash not in (before[20], middle[20])


def test_reorg_length_moves_the_head() -> None:
    chain = ScriptedChain(1, head=10)
    before = _hashes(chain)
    chain.reorg(3, {9: [_transfer()]}, length=5)  # 8..10 replaced by 8..12
    assert chain.head == 12
    assert chain.block(9).logs == (_transfer(),)
    assert chain.block(8).parent_hash == before[7]
    shorter = _hashes(chain)
    chain.reorg(4, length=1)  # 9..12 replaced by one block 9
    assert chain.head == 9
    assert chain.block(9).hash not in (before[9], shorter[9])
    chain.reorg(2, length=0)  # just drop 8..9
    assert chain.head == 7
    # Blocks appended after reorgs never reuse an orphaned block's hash.
    chain.advance(5)
    seen = {before[n] for n in range(8, 11)} | {shorter[n] for n in range(8, 13)}
    assert not seen & set(_hashes(chain)[8:])
    assert _hashes(chain)[:8] == before[:8]


def test_reorg_rejects_bad_arguments() -> None:
    chain = ScriptedChain(1, head=5)
    with pytest.raises(ValueError, match="depth"):
        chain.reorg(0)
    with pytest.raises(ValueError, match="depth"):
        chain.reorg(6)  # block 0 is never replaced
    with pytest.raises(ValueError, match="outside the new blocks"):
        chain.reorg(2, {3: [_transfer()]})
    with pytest.raises(ValueError, match="length"):
        chain.reorg(2, length=-1)
    assert _hashes(chain) == _hashes(ScriptedChain(1, head=5))


def test_logspec_normalises_and_validates() -> None:
    log = LogSpec("0x" + "AB" * 20, ["0x" + "CD" * 32], "0xFF")  # type: ignore[arg-type]
    assert log == LogSpec("0x" + "ab" * 20, ("0x" + "cd" * 32,), "0xff")
    with pytest.raises(ValueError, match="address"):
        LogSpec("0x1234", ())
    with pytest.raises(ValueError, match="topic"):
        LogSpec(TOKEN_A, ("0x12",))
    with pytest.raises(ValueError, match="at most 4"):
        LogSpec(TOKEN_A, (TRANSFER,) * 5)
    with pytest.raises(ValueError, match="data"):
        LogSpec(TOKEN_A, (), "0x123")
    with pytest.raises(TypeError, match="not one string"):
        LogSpec(TOKEN_A, TRANSFER)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside"):
        ScriptedChain(1, head=3, logs={4: [log]})


def test_logs_filter_order_and_fields() -> None:
    chain = _sample_chain(genesis_timestamp=100, block_time=10)
    logs = chain.logs(0, 20)
    assert [(log["blockNumber"], log["logIndex"]) for log in logs] == [
        ("0x3", "0x0"),
        ("0x3", "0x1"),
        ("0x3", "0x2"),
        ("0x7", "0x0"),
        ("0xf", "0x0"),
        ("0xf", "0x1"),
    ]
    first = logs[0]
    assert first == {
        "address": TOKEN_A,
        "topics": [TRANSFER, ALICE, BOB],
        "data": f"0x{1:064x}",
        "blockNumber": "0x3",
        "blockHash": chain.block(3).hash,
        "blockTimestamp": hex(130),
        "transactionHash": first["transactionHash"],
        "transactionIndex": "0x0",
        "logIndex": "0x0",
        "removed": False,
    }
    tx_hashes = [log["transactionHash"] for log in logs]
    assert len(set(tx_hashes)) == len(tx_hashes)
    assert all(len(h) == 66 for h in tx_hashes)
    assert [log["transactionHash"] for log in _sample_chain().logs(0, 20)] == tx_hashes

    assert len(chain.logs(4, 14)) == 1
    assert chain.logs(8, 14) == []
    assert len(chain.logs(3, 3)) == 3
    only_a = chain.logs(0, 20, addresses=[TOKEN_A.upper().replace("0X", "0x")])
    assert {log["address"] for log in only_a} == {TOKEN_A}
    assert len(only_a) == 4
    approvals = chain.logs(0, 20, topic0s={APPROVAL})
    assert [log["blockNumber"] for log in approvals] == ["0x3", "0xf"]
    assert chain.logs(0, 20, addresses=[TOKEN_B], topic0s=[TRANSFER])[0]["logIndex"] == "0x2"
    assert chain.logs(0, 20, topic0s=()) == []


def test_from_logs_keeps_block_numbers() -> None:
    raw = [
        RawLog(100, 0, "0x" + "01" * 32, TOKEN_A, (TRANSFER, ALICE, BOB), "0x01"),
        RawLog(100, 1, "0x" + "02" * 32, TOKEN_B, (APPROVAL,), "0x"),
        RawLog(105, 0, "0x" + "03" * 32, TOKEN_A, (), "0x02"),
    ]
    chain = ScriptedChain.from_logs(1, raw, block_time=1)
    assert chain.head == 105
    assert chain.block_time == 1
    assert chain.block(100).logs == (
        LogSpec(TOKEN_A, (TRANSFER, ALICE, BOB), "0x01"),
        LogSpec(TOKEN_B, (APPROVAL,), "0x"),
    )
    as_dicts = [
        {"block_number": 100, "address": TOKEN_A, "topics": [TRANSFER, ALICE, BOB], "data": "0x01"},
        {"blockNumber": "0x64", "address": TOKEN_B, "topics": [APPROVAL], "data": "0x"},
        {"block_number": 105, "address": TOKEN_A, "topics": [], "data": "0x02"},
    ]
    same = ScriptedChain.from_logs(1, as_dicts, head=110, block_time=1)
    assert same.head == 110
    assert _hashes(same)[:106] == _hashes(chain)
    assert ScriptedChain.from_logs(1, []).head == 0
    with pytest.raises(ValueError, match="outside"):
        ScriptedChain.from_logs(1, raw, head=104)


def _read_all(path: Path, log_filter: LogFilter) -> list[RawLog]:
    chunks = read_log_file(path, log_filter=log_filter, start_block=0, end_block=None)
    return list(itertools.chain.from_iterable(chunks))


def test_from_file_holds_every_log_the_reader_yields() -> None:
    chain = ScriptedChain.from_file(1, _GZ)
    logs = chain.logs(0, chain.head)
    topic0s = {log["topics"][0] for log in logs}
    expected = _read_all(_GZ, LogFilter(dict.fromkeys(topic0s, None)))
    assert chain.head == 18426303 == expected[-1].block_number
    assert len(logs) == len(expected) > 16_000
    assert [
        (int(log["blockNumber"], 16), log["address"], tuple(log["topics"])) for log in logs
    ] == [(raw.block_number, raw.address, raw.topics) for raw in expected]
    # The parquet export of the same logs makes the very same chain.
    if _PARQUET.is_file():
        other = ScriptedChain.from_file(1, _PARQUET)
        assert other.block(18426280).hash == chain.block(18426280).hash
        assert len(other.logs(0, other.head)) == len(logs)


def test_from_file_with_a_filter_and_range() -> None:
    transfers = LogFilter({TRANSFER: None})
    chain = ScriptedChain.from_file(
        1, _GZ, log_filter=transfers, start_block=18426260, end_block=18426270, head=18426299
    )
    expected = [
        raw for raw in _read_all(_GZ, transfers) if 18426260 <= raw.block_number <= 18426270
    ]
    logs = chain.logs(0, chain.head)
    assert chain.head == 18426299
    assert len(logs) == len(expected) > 0
    assert {log["topics"][0] for log in logs} == {TRANSFER}


# --------------------------------------------------------------------------
# The JSON-RPC server
# --------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[RpcServer]:
    async with open_rpc_server(_sample_chain(max_block_range=100, max_logs_per_query=6)) as srv:
        yield srv


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


async def _call(client: httpx.AsyncClient, url: str, method: str, *params: Any) -> Any:
    response = await client.post(
        url, json={"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == 7
    return body


async def _result(client: httpx.AsyncClient, url: str, method: str, *params: Any) -> Any:
    body = await _call(client, url, method, *params)
    assert "error" not in body, body
    return body["result"]


async def _error(client: httpx.AsyncClient, url: str, method: str, *params: Any) -> dict[str, Any]:
    body = await _call(client, url, method, *params)
    assert "result" not in body, body
    error: dict[str, Any] = body["error"]
    return error


async def test_basic_methods(server: RpcServer, client: httpx.AsyncClient) -> None:
    url, chain = server.url, server.chain
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/")
    assert await _result(client, url, "eth_chainId") == "0x1"
    assert await _result(client, url, "eth_blockNumber") == "0x14"
    block = await _result(client, url, "eth_getBlockByNumber", "0x7", False)
    assert {k: block[k] for k in ("number", "hash", "parentHash", "timestamp")} == {
        "number": "0x7",
        "hash": chain.block(7).hash,
        "parentHash": chain.block(6).hash,
        "timestamp": hex(chain.block(7).timestamp),
    }
    # One transaction per log, by hash without `true`.
    logs = chain.logs(7, 7)
    assert block["transactions"] == [lg["transactionHash"] for lg in logs]
    latest = await _result(client, url, "eth_getBlockByNumber", "latest", False)
    assert latest["number"] == "0x14"
    assert (await _result(client, url, "eth_getBlockByNumber", "earliest", True))["number"] == "0x0"
    assert (await _result(client, url, "eth_getBlockByNumber", "finalized", False))[
        "number"
    ] == "0x0"
    assert await _result(client, url, "eth_getBlockByNumber", "0x15", False) is None
    assert await _result(client, url, "eth_getBlockByHash", block["hash"], False) == block
    chain.advance(80)
    assert (await _result(client, url, "eth_getBlockByNumber", "finalized", False))[
        "number"
    ] == hex(100 - 64)
    chain.reorg(94)  # from block 7 on
    assert await _result(client, url, "eth_getBlockByHash", block["hash"], False) is None
    assert await _result(client, url, "eth_getBlockByHash", "0x" + "00" * 32, False) is None
    assert server.calls["eth_getBlockByNumber"] == 6
    assert server.calls["eth_getBlockByHash"] == 3
    assert server.calls["eth_chainId"] == 1


async def test_protocol_errors(server: RpcServer, client: httpx.AsyncClient) -> None:
    url = server.url
    error = await _error(client, url, "eth_sendRawTransaction", "0x00")
    assert error == {
        "code": -32601,
        "message": "the method eth_sendRawTransaction does not exist/is not available",
    }
    response = await client.post(url, content=b"{not json")
    assert response.status_code == 200
    assert response.json()["error"]["code"] == -32700
    assert (await client.get(url)).status_code == 405
    assert (await _error(client, url, "eth_getBlockByNumber", "12", False))["code"] == -32602
    assert (await _error(client, url, "eth_getBlockByHash", "0x12", False))["code"] == -32602
    response = await client.post(url, json=[])
    assert response.json()["error"]["code"] == -32600
    assert server.calls["eth_sendRawTransaction"] == 1
    # Keep-alive: every call above went over one connection, which still works.
    assert await _result(client, url, "eth_chainId") == "0x1"


async def test_get_logs_filters_and_clamps(server: RpcServer, client: httpx.AsyncClient) -> None:
    url, chain = server.url, server.chain

    async def get_logs(**criteria: Any) -> Any:
        return await _result(client, url, "eth_getLogs", criteria)

    everything = chain.logs(0, 20)
    assert await get_logs(fromBlock="0x0", toBlock="0x14") == everything
    # toBlock beyond the head is clamped; fromBlock beyond it gives nothing.
    assert await get_logs(fromBlock="0x4", toBlock="0x3e8") == everything[3:]
    assert await get_logs(fromBlock="0x15", toBlock="0x3e8") == []
    assert await get_logs(fromBlock="earliest", toBlock="latest") == everything
    assert await get_logs() == []  # latest..latest: block 20 is empty
    assert await get_logs(fromBlock="0x0", address=TOKEN_B) == chain.logs(
        0, 20, addresses=[TOKEN_B]
    )
    both = await get_logs(
        fromBlock="0x0", address=[TOKEN_A, TOKEN_B], topics=[[APPROVAL, TRANSFER]]
    )
    assert both == everything
    approvals = await get_logs(fromBlock="0x0", topics=[APPROVAL])
    assert [log["blockNumber"] for log in approvals] == ["0x3", "0xf"]
    to_alice = await get_logs(fromBlock="0x0", topics=[None, None, ALICE])
    assert [log["blockNumber"] for log in to_alice] == ["0x7"]
    by_hash = await get_logs(blockHash=chain.block(3).hash)
    assert by_hash == everything[:3]

    async def error(**criteria: Any) -> dict[str, Any]:
        return await _error(client, url, "eth_getLogs", criteria)

    assert (await error(fromBlock="0x5", toBlock="0x4"))["code"] == -32602
    assert (await error(fromBlock="0xzz", toBlock="0x4"))["code"] == -32602
    assert (await error(fromBlock="0x0", address="0x12"))["code"] == -32602
    assert (await error(blockHash="0x" + "00" * 32))["code"] == -32000
    assert (await error(blockHash=chain.block(3).hash, fromBlock="0x1"))["code"] == -32602
    chain.advance(200, {150: [_transfer()] * 7})
    assert await error(fromBlock="0x0", toBlock="0x64") == {
        "code": -32600,
        "message": "block range too large, max is 100",
    }
    assert len(await get_logs(fromBlock="0x1", toBlock="0x64")) == 6
    assert await error(fromBlock="0x64", toBlock="0xc7") == {
        "code": -32005,
        "message": "query returned more than 6 results",
    }
    # Filtering happens before the limit, as on a real node.
    assert await get_logs(fromBlock="0x64", toBlock="0xc7", address=TOKEN_B) == []
    assert server.calls["eth_getLogs"] == 19


async def test_batch_requests(server: RpcServer, client: httpx.AsyncClient) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": "two", "method": "eth_nope", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_chainId"},
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "eth_getLogs",
            "params": [{"fromBlock": "0x3", "toBlock": "0x3"}],
        },
    ]
    response = await client.post(server.url, json=batch)
    answers = response.json()
    assert [a["id"] for a in answers] == [1, "two", 3, 4]
    assert answers[0]["result"] == "0x14"
    assert answers[1]["error"]["code"] == -32601
    assert answers[2]["result"] == "0x1"
    assert len(answers[3]["result"]) == 3
    assert server.calls == {"eth_blockNumber": 1, "eth_nope": 1, "eth_chainId": 1, "eth_getLogs": 1}

    server.fail("eth_chainId", kind="rpc_error", code=-32010, message="nope")
    answers = (await client.post(server.url, json=batch)).json()
    assert answers[0]["result"] == "0x14"
    assert answers[2]["error"] == {"code": -32010, "message": "nope"}
    assert len(answers[3]["result"]) == 3

    server.fail("eth_getLogs", kind="http_503")
    assert (await client.post(server.url, json=batch)).status_code == 503
    assert (await client.post(server.url, json=batch)).status_code == 200


@pytest.mark.parametrize(
    ("kind", "status"), [("http_500", 500), ("http_503", 503), ("http_429", 429)]
)
async def test_http_failures(
    server: RpcServer, client: httpx.AsyncClient, kind: str, status: int
) -> None:
    server.fail("eth_blockNumber", 2, kind=kind)
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    for _ in range(2):
        response = await client.post(server.url, json=payload)
        assert response.status_code == status
        assert response.text
    assert await _result(client, server.url, "eth_chainId") == "0x1"  # other methods unaffected
    assert await _result(client, server.url, "eth_blockNumber") == "0x14"
    assert server.calls["eth_blockNumber"] == 3


async def test_rpc_error_and_wildcard_failures(
    server: RpcServer, client: httpx.AsyncClient
) -> None:
    server.fail("eth_getLogs", kind="rpc_error", code=-32046, message="try again")
    assert await _error(client, server.url, "eth_getLogs", {}) == {
        "code": -32046,
        "message": "try again",
    }
    assert await _result(client, server.url, "eth_getLogs", {}) == []
    server.fail("*", 2, kind="rpc_error")
    server.fail("eth_chainId", kind="http_500")
    # A method's own failure comes first; "*" then fails the next two calls of any method.
    response = await client.post(
        server.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
    )
    assert response.status_code == 500
    assert (await _error(client, server.url, "eth_chainId"))["message"] == "scripted failure"
    assert (await _error(client, server.url, "eth_blockNumber"))["code"] == -32000
    assert await _result(client, server.url, "eth_blockNumber") == "0x14"
    with pytest.raises(ValueError, match="unknown failure kind"):
        server.fail("eth_chainId", kind="explode")


async def test_disconnect_failure(server: RpcServer) -> None:
    server.fail("eth_blockNumber", kind="disconnect")
    async with httpx.AsyncClient(timeout=10) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(
                server.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}
            )
        assert await _result(client, server.url, "eth_blockNumber") == "0x14"
    assert server.calls["eth_blockNumber"] == 2


async def test_timeout_failure(server: RpcServer) -> None:
    server.fail("eth_getLogs", kind="timeout")
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [{}]}
    async with httpx.AsyncClient(timeout=0.5) as client:
        start = trio.current_time()
        with pytest.raises(httpx.ReadTimeout):
            await client.post(server.url, json=payload)
        assert trio.current_time() - start >= 0.5
        assert await _result(client, server.url, "eth_getLogs", {}) == []


async def test_latency(server: RpcServer, client: httpx.AsyncClient) -> None:
    server.latency("eth_blockNumber", 0.2)
    start = trio.current_time()
    assert await _result(client, server.url, "eth_blockNumber") == "0x14"
    assert trio.current_time() - start >= 0.2
    start = trio.current_time()
    await _result(client, server.url, "eth_chainId")
    assert trio.current_time() - start < 0.2
    server.latency("*", 0.2)
    server.latency("eth_blockNumber", 0)
    start = trio.current_time()
    await _result(client, server.url, "eth_chainId")
    assert trio.current_time() - start >= 0.2
    with pytest.raises(ValueError, match="latency"):
        server.latency("*", -1)


async def test_latency_is_a_trio_sleep(autojump_clock: trio.testing.MockClock) -> None:
    # The client sets no timeout, so the server's sleep is the only deadline: the
    # virtual clock jumps straight to it while the real socket waits.
    async with (
        open_rpc_server(ScriptedChain(1, head=3)) as srv,
        httpx.AsyncClient(timeout=None) as client,
    ):
        srv.latency("*", 30)
        start = trio.current_time()
        assert await _result(client, srv.url, "eth_blockNumber") == "0x3"
        assert trio.current_time() - start == 30


async def test_errors_in_the_body_are_not_wrapped() -> None:
    with pytest.raises(KeyError):
        async with open_rpc_server(ScriptedChain(1)) as srv:
            srv.chain.block(5)


async def test_produce_blocks_with_reorgs(autojump_clock: trio.testing.MockClock) -> None:
    chain = ScriptedChain(1, head=2)

    def logs(n: int) -> list[LogSpec]:
        return [_transfer(amount=n)] if n % 2 else []

    async with open_rpc_server(chain) as srv, trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(
            lambda: srv.produce_blocks(interval=2, until=10, reorgs={6: 3}, logs=logs)
        )
        await trio.sleep_until(start + 7)  # between block 5 (t=6) and block 6 (t=8)
        assert chain.head == 5
        before = _hashes(chain)
        assert chain.block(5).logs == (_transfer(amount=5),)
        await trio.sleep_until(start + 9)  # block 6 arrived and 4..6 were replaced
        assert chain.head == 6
        after = _hashes(chain)
        assert after[:4] == before[:4]
        assert after[4] != before[4]
        assert after[5] != before[5]
        assert chain.block(5).logs == (_transfer(amount=5),)  # logs(n) for replacements too
        assert chain.block(4).parent_hash == before[3]
    assert trio.current_time() - start == 16
    assert chain.head == 10
    assert [int(log["blockNumber"], 16) for log in chain.logs(0, 10)] == [3, 5, 7, 9]
    assert _hashes(chain)[:7] == after
