"""The local JSON-RPC node both indexers read: ``python -m _ponder.node FILE --port 0``.

It serves :mod:`_ponder.chain`'s scripted chain over HTTP/1.1 (keep-alive, h11 on
Trio, JSON-RPC batches too), with what Ponder 0.16 and this project ask for:
``eth_chainId``, ``eth_blockNumber``, ``eth_getBlockByNumber`` and
``eth_getBlockByHash`` (headers or full transactions), ``eth_getLogs`` (by range or
block hash, addresses, topic0) with a result limit like geth's providers'.  Any
other method is answered "does not exist" and counted, so a run shows what a
client asked for that is not served.

It runs in a process of its own so that neither indexer shares an interpreter with
it.  When listening it prints one JSON line ``{"url": ..., "events": ..., ...}``.
``bench_calls`` (a method of its own) answers what was asked since the last
``bench_calls`` and starts counting afresh: the methods, the ``eth_getLogs``
block ranges and address counts, headers vs full blocks.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from functools import partial
from typing import Any

import h11
import orjson
import trio

from _ponder.chain import ChainData, build

_RECV = 65536
# geth's block tags as distances below the head (as indexer.testing's server has them).
_TAGS = {"latest": 0, "pending": 0, "safe": 32, "finalized": 64}


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Node:
    """The JSON-RPC methods over one :class:`ChainData`, and what was asked of them."""

    def __init__(self, data: ChainData) -> None:
        self.data = data
        self.calls: dict[str, Any] = {}
        self._reset()

    def _reset(self) -> None:
        self.methods: collections.Counter[str] = collections.Counter()
        self.ranges: collections.Counter[int] = collections.Counter()
        self.address_counts: collections.Counter[int] = collections.Counter()
        self.blocks_full: collections.Counter[str] = collections.Counter()
        self.logs_served = 0

    def stats(self) -> dict[str, Any]:
        out = {
            "methods": dict(self.methods),
            "getLogs_block_ranges": {str(k): v for k, v in sorted(self.ranges.items())},
            "getLogs_address_counts": {str(k): v for k, v in sorted(self.address_counts.items())},
            "getBlock_full_transactions": dict(self.blocks_full),
            "logs_served": self.logs_served,
        }
        self._reset()
        return out

    def answer(self, body: bytes) -> bytes:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(None, -32700, "parse error")
        if isinstance(payload, list):
            return b"[" + b",".join(self._call(c) for c in payload) + b"]"
        return self._call(payload)

    def _call(self, call: Any) -> bytes:
        if not isinstance(call, dict) or not isinstance(call.get("method"), str):
            return _error(None, -32600, "invalid request")
        method, call_id = call["method"], call.get("id")
        self.methods[method] += 1
        params = call.get("params") or []
        try:
            result = self._dispatch(method, params)
        except RpcError as exc:
            return _error(call_id, exc.code, exc.message)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            return _error(call_id, -32602, f"invalid params: {exc!r}")
        return b'{"jsonrpc":"2.0","id":' + orjson.dumps(call_id) + b',"result":' + result + b"}"

    def _dispatch(self, method: str, params: list[Any]) -> bytes:
        data = self.data
        if method == "eth_chainId":
            return orjson.dumps(hex(data.chain.chain_id))
        if method == "net_version":
            return orjson.dumps(str(data.chain.chain_id))
        if method == "eth_blockNumber":
            return orjson.dumps(hex(data.chain.head))
        if method == "eth_getBlockByNumber":
            full = bool(params[1]) if len(params) > 1 else False
            self.blocks_full[str(full).lower()] += 1
            return data.block_json(self._number(params[0]), full) or b"null"
        if method == "eth_getBlockByHash":
            full = bool(params[1]) if len(params) > 1 else False
            self.blocks_full[str(full).lower()] += 1
            block = data.chain.block_by_hash(params[0])
            return b"null" if block is None else data.block_json(block.number, full) or b"null"
        if method == "eth_getLogs":
            return self._get_logs(params[0])
        if method == "bench_calls":
            return orjson.dumps(self.stats())
        raise RpcError(-32601, f"the method {method} does not exist/is not available")

    def _number(self, value: Any) -> int:
        if value is None:
            value = "latest"
        if value in _TAGS:
            return max(0, self.data.chain.head - _TAGS[value])
        if value == "earliest":
            return 0
        return int(value, 16)

    def _get_logs(self, criteria: dict[str, Any]) -> bytes:
        data = self.data
        if criteria.get("blockHash") is not None:
            block = data.chain.block_by_hash(criteria["blockHash"])
            if block is None:
                raise RpcError(-32000, "unknown block")
            first = last = block.number
        else:
            first = self._number(criteria.get("fromBlock"))
            last = min(self._number(criteria.get("toBlock")), data.chain.head)
            if last < first:
                raise RpcError(
                    -32602, f"invalid params: toBlock {last} is before fromBlock {first}"
                )
        self.ranges[last - first + 1] += 1
        address = criteria.get("address")
        addresses = None if address is None else [address] if isinstance(address, str) else address
        if addresses is not None:
            addresses = [a.lower() for a in addresses]
            self.address_counts[len(addresses)] += 1
        else:
            self.address_counts[0] += 1
        topics = criteria.get("topics") or []
        if any(t is not None for t in topics[1:]):
            # Neither indexer filters on indexed arguments; refusing keeps answers exact.
            raise RpcError(-32602, "invalid params: this node filters on topic0 only")
        positions = data.logs_in(first, last, addresses)
        if topics and topics[0] is not None:
            wanted = {topics[0]} if isinstance(topics[0], str) else set(topics[0])
            wanted = {t.lower() for t in wanted}
            positions = [p for p in positions if data.log_topic0[p] in wanted]
        most = data.chain.max_logs_per_query
        if most is not None and len(positions) > most:
            raise RpcError(-32005, f"query returned more than {most} results")
        self.logs_served += len(positions)
        rendered = data.log_json
        return b"[" + b",".join([rendered[p] for p in positions]) + b"]"


def _error(call_id: Any, code: int, message: str) -> bytes:
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}}
    )


async def _next_event(conn: h11.Connection, stream: trio.SocketStream) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(_RECV))


async def _serve(node: Node, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    async with stream:
        try:
            while True:
                request = await _next_event(conn, stream)
                if not isinstance(request, h11.Request):
                    return
                body = bytearray()
                while not isinstance(event := await _next_event(conn, stream), h11.EndOfMessage):
                    if not isinstance(event, h11.Data):
                        return
                    body += event.data
                reply = node.answer(bytes(body))
                headers = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(reply))),
                ]
                await stream.send_all(
                    conn.send(h11.Response(status_code=200, headers=headers))
                    + conn.send(h11.Data(data=reply))
                    + conn.send(h11.EndOfMessage())
                )
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return


async def serve(node: Node, port: int, ready: dict[str, Any]) -> None:
    async with trio.open_nursery() as nursery:
        listeners: list[trio.SocketListener] = await nursery.start(
            partial(trio.serve_tcp, partial(_serve, node), port, host="127.0.0.1")
        )
        bound = listeners[0].socket.getsockname()[1]
        ready["url"] = f"http://127.0.0.1:{bound}/"
        print(json.dumps(ready), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("file", help="an erc20-balances workload file (bench/workloads.py)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--max-logs", type=int, default=10_000, help="eth_getLogs result limit")
    args = p.parse_args(argv)
    data = build(args.file, max_logs_per_query=args.max_logs)
    ready = {
        "events": data.events,
        "first_block": data.first_block,
        "last_block": data.last_block,
        "head": data.chain.head,
        "tokens": data.tokens,
        "max_logs_per_query": args.max_logs,
        "block_range": data.block_range_within(args.max_logs),
    }
    trio.run(serve, Node(data), args.port, ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
