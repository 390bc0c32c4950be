"""Benchmark: 10,000+ factory children over a scripted chain, by address and by topic.

    python bench/factory_children.py [--children N] [--url URL]

A registry lists ``--children`` tokens over ``--blocks`` blocks
(``indexer.testing.ScriptedChain``, served in-process by ``RpcServer``).
Each token emits a Transfer in its constructor (before the listing, same
block) and one later; a few never-listed tokens transfer too (filtered out).
The project is run once per ``child_address_limit``: everything by address
(limit above the number of children), the default (1,000: by address, then
by topic), and by topic from the start (0).  Printed per mode: the
``eth_getLogs`` calls, all JSON-RPC calls, seconds, events indexed and
children registered, which must equal the chain's.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import psycopg
import trio
from psycopg import sql

from indexer import RunOptions, load_config, load_handlers, run_project
from indexer.testing import LogSpec, RpcServer, ScriptedChain, encode_log

REGISTRY = "0x" + "e0" * 20
LISTED = "event TokenListed(address indexed token, uint256 index)"
TRANSFER = "event Transfer(address indexed from, address indexed to, uint256 value)"
HANDLERS = """
from indexer import Context, Entity, Event, on


class Holding(Entity):
    id: str
    balance: int


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    key = f"{event.address}:{event.params['to']}"
    old = await ctx.get(Holding, key) or Holding(key, 0)
    ctx.set(old.replace(balance=old.balance + event.params["value"]))
"""


def build_chain(children: int, blocks: int, seed: int = 1) -> tuple[ScriptedChain, int]:
    """The chain, and the number of Transfers of listed tokens it holds."""
    rng = random.Random(seed)
    zero = "0x" + "00" * 20
    per_block = -(-children // blocks)
    logs: dict[int, list[LogSpec]] = {}
    listed: list[str] = []
    counted = 0
    for n in range(1, blocks + 1):
        block: list[LogSpec] = []
        for _ in range(per_block):
            if len(listed) >= children:
                break
            token = "0x" + f"{len(listed) + 1:040x}"
            holder = "0x" + f"{rng.randrange(1, 2**159):040x}"
            block.append(
                encode_log(TRANSFER, {"from": zero, "to": holder, "value": 100}, address=token)
            )
            block.append(
                encode_log(LISTED, {"token": token, "index": len(listed)}, address=REGISTRY)
            )
            listed.append(token)
            counted += 1
        for _ in range(per_block):
            if len(listed) > per_block:
                token = rng.choice(listed[:-per_block])
                holder = "0x" + f"{rng.randrange(1, 2**159):040x}"
                block.append(
                    encode_log(TRANSFER, {"from": zero, "to": holder, "value": 1}, address=token)
                )
                counted += 1
        for _ in range(3):  # never listed: fetched by topic, dropped by the loop
            stranger = "0x" + "ff" * 18 + f"{rng.randrange(50):04x}"
            block.append(
                encode_log(TRANSFER, {"from": zero, "to": zero, "value": 1}, address=stranger)
            )
        logs[n] = block
    return ScriptedChain(1, head=blocks, logs=logs), counted


def project(tmp: Path, schema: str, limit: int, end: int) -> Path:
    (tmp / "handlers.py").write_text(HANDLERS)
    (tmp / "indexer.yaml").write_text(
        f"name: factory-bench\nhandlers: handlers.py\nschema: {schema}\nchains:\n"
        f"  - id: 1\n    start_block: 1\n    end_block: {end}\n    max_reorg_depth: 0\n"
        f"    source: {{rpc: 'http://scripted.invalid/', child_address_limit: {limit}}}\n"
        f"    contracts:\n"
        f"      - name: Registry\n        addresses: ['{REGISTRY}']\n        events: ['{LISTED}']\n"
        f"      - name: Token\n        factory: {{contract: Registry, event: TokenListed, parameter: token}}\n"
        f"        events: ['{TRANSFER}']\n"
    )
    return tmp


def run_mode(url: str, chain: ScriptedChain, limit: int, span: int) -> dict[str, float]:
    server = RpcServer(chain)
    with tempfile.TemporaryDirectory() as tmp:
        schema = f"bench_factory_{limit}"
        config = load_config(project(Path(tmp), schema, limit, chain.head))
        handlers = load_handlers(config)
        client = {"transport": server.transport()}
        opts = RunOptions(
            database_url=url,
            handle_signals=False,
            reset=True,
            rpc_tuning={"client_options": client, "initial_span": span, "max_span": span},
        )
        started = time.perf_counter()
        summary = trio.run(run_project, config, handlers, opts)
        seconds = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        (children,) = conn.execute(
            sql.SQL("SELECT count(*) FROM {}._indexer_children").format(sql.Identifier(schema))
        ).fetchone() or (0,)
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return {
        "limit": limit,
        "eth_getLogs": server.calls["eth_getLogs"],
        "calls": sum(server.calls.values()),
        "seconds": round(seconds, 2),
        "events": summary.events,
        "children": children,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--blocks", type=int, default=500)
    parser.add_argument("--span", type=int, default=50, help="blocks per eth_getLogs range")
    parser.add_argument("--url", default=os.environ.get("INDEXER_TEST_DATABASE_URL"))
    args = parser.parse_args()
    chain, counted = build_chain(args.children, args.blocks)
    print(f"chain: {chain.head} blocks, {args.children} children, {counted} Transfers of children")
    for limit in (args.children + 1, 1_000, 0):
        row = run_mode(args.url, chain, limit, args.span)
        # Events: the children's Transfers and the listings (routed to register them).
        ok = row["children"] == args.children and row["events"] == counted + args.children
        print(row, "exact" if ok else "MISMATCH")


if __name__ == "__main__":
    main()
