"""The RPC floor: ``eth_getLogs`` in fixed ranges + JSON parse + dict fold, no database.

    python -m _ponder.rpc_floor URL --first N --last N --range N --inflight K --addresses FILE

What any indexer over this node has to do at the least: fetch every log once (the same
filter as the indexers: the tokens' addresses and the Transfer topic0), parse the
answer (``orjson``), decode the two addresses and the value from the hex and fold them
into per-(token, holder) balances.  ``--inflight`` requests are kept in flight on as
many keep-alive connections (threads; the parsing and folding stay on the main thread,
in block order).  Prints one JSON object: the events, the seconds (in-process, from
before the first request to the end of the fold) and the fold's digest
(:func:`_ponder.oracle.digest`) for the oracle check.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from _ponder.oracle import digest

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


class _Client:
    """One keep-alive connection per thread: http.client is the least work per request."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "", parts.port or 80, parts.path or "/"
        self.local = threading.local()

    def post(self, body: bytes) -> bytes:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port)
        conn.request("POST", self.path, body, {"content-type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
        return data


def run(
    url: str, first: int, last: int, block_range: int, inflight: int, addresses: list[str]
) -> dict[str, Any]:
    client = _Client(url)
    ranges = [(lo, min(lo + block_range - 1, last)) for lo in range(first, last + 1, block_range)]
    # The filter does not change between ranges: render it once with a placeholder.
    template = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_getLogs",
            "params": [
                {"fromBlock": "FROM", "toBlock": "TO", "address": addresses, "topics": [TRANSFER]}
            ],
        }
    )

    def fetch(span: tuple[int, int]) -> bytes:
        body = template.replace(b'"FROM"', f'"{hex(span[0])}"'.encode(), 1)
        return client.post(body.replace(b'"TO"', f'"{hex(span[1])}"'.encode(), 1))

    accounts: dict[str, list[int]] = {}
    get = accounts.get
    events = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=inflight) as pool:
        # map() keeps ``inflight`` requests going and hands the answers back in order.
        for answer in pool.map(fetch, ranges):
            reply = orjson.loads(answer)
            if "error" in reply:
                raise RuntimeError(f"eth_getLogs: {reply['error']}")
            for log in reply["result"]:
                topics = log["topics"]
                token = log["address"]
                value = int(log["data"], 16)
                events += 1
                for holder, delta in (
                    ("0x" + topics[1][26:], -value),
                    ("0x" + topics[2][26:], value),
                ):
                    key = f"{token}-{holder}"
                    row = get(key)
                    if row is None:
                        accounts[key] = [delta, 1]
                    else:
                        row[0] += delta
                        row[1] += 1
    seconds = time.perf_counter() - started
    return {
        "events": events,
        "seconds": seconds,
        "requests": len(ranges),
        "digest": digest((key, b, n) for key, (b, n) in accounts.items()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("url")
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--last", type=int, required=True)
    p.add_argument("--range", type=int, required=True, help="blocks per eth_getLogs")
    p.add_argument("--inflight", type=int, default=1, help="requests in flight")
    p.add_argument("--addresses", required=True, help="a JSON file: the list of token addresses")
    args = p.parse_args(argv)
    with open(args.addresses) as f:
        addresses = json.load(f)
    out = run(args.url, args.first, args.last, args.range, args.inflight, addresses)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
