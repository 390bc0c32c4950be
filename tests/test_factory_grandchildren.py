"""Grandchildren: children that a handler-registered child registers by a factory event.

A handler (``ctx.add_contract``) registers a pool mid-range, after the range
was fetched; the pool's own ``TokenListed`` events then register tokens.
Those count from the start of their registering block (their constructor's
Transfer before the listing counts) but never from before the handler's log,
which the loop has already passed.  Over JSON-RPC by address (the pool's and
tokens' logs are fetched again), by topic (they were delivered, the loop
filters), in one range or many (the fetch-ahead path), and from a file.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import trio
from psycopg import sql

from indexer import RunOptions, load_config, load_handlers, run_project
from indexer.testing import RpcServer, ScriptedChain, encode_log

from ._factory_chain import REGISTRY, TRANSFER
from ._gate import run_driven

if TYPE_CHECKING:
    from pathlib import Path

ADOPTED = "event Adopted(address pool)"
# Pool's factory event (a `factory` key is what makes a contract a child);
# never emitted here, so the handler's call is the pool's only registration.
POOL_LISTED = "event PoolListed(address indexed pool)"
LISTED = "event TokenListed(address indexed token, uint256 index)"
POOL = "0x" + "a1" * 20
EARLY = "0x" + "a2" * 20  # listed by the pool in the block of the pool's adoption
LATE = "0x" + "a3" * 20  # listed by the pool two blocks later
NEVER = "0x" + "a4" * 20  # never listed

HANDLERS = """
from indexer import Context, Entity, Event, on


class Moved(Entity):
    id: str  # the token
    total: int  # the sum of the values of its counted Transfers


@on("Registry", "Adopted")
async def adopted(event: Event, ctx: Context) -> None:
    ctx.add_contract("Pool", event.params["pool"])


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    old = await ctx.get(Moved, event.address) or Moved(event.address, 0)
    ctx.set(old.replace(total=old.total + event.params["value"]))
"""


def _transfer(token: str, value: int) -> Any:
    holders = {"from": "0x" + "01" * 20, "to": "0x" + "02" * 20}
    return encode_log(TRANSFER, {**holders, "value": value}, address=token)


def _chain() -> ScriptedChain:
    """Each Transfer's value is a power of two: a total says which ones counted."""
    return ScriptedChain(
        1,
        head=6,
        logs={
            2: [
                _transfer(EARLY, 1),  # before the handler's log: not counted
                encode_log(ADOPTED, {"pool": POOL}, address=REGISTRY),
                _transfer(EARLY, 2),  # its constructor, after the handler's log: counted
                encode_log(LISTED, {"token": EARLY, "index": 0}, address=POOL),
                _transfer(EARLY, 4),
            ],
            3: [_transfer(LATE, 8)],  # before its registering block: not counted
            4: [
                _transfer(LATE, 16),  # its constructor: counted
                encode_log(LISTED, {"token": LATE, "index": 1}, address=POOL),
                _transfer(LATE, 32),
            ],
            5: [_transfer(LATE, 64), _transfer(NEVER, 128)],
            6: [_transfer(EARLY, 256)],
        },
    )


EXPECTED_TOTALS = {EARLY: 2 + 4 + 256, LATE: 16 + 32 + 64}
EXPECTED_CHILDREN = [
    ("Pool", POOL, 2, 1),
    ("Token", EARLY, 2, 3),
    ("Token", LATE, 4, 1),
]


def _project(tmp: Path, schema: str, source: str) -> Path:
    project = tmp / "grandchildren"
    project.mkdir()
    (project / "handlers.py").write_text(HANDLERS)
    (project / "indexer.yaml").write_text(
        f"name: grandchildren\nhandlers: handlers.py\nschema: {schema}\n"
        f"chains:\n  - id: 1\n    start_block: 1\n    end_block: 6\n    max_reorg_depth: 2\n"
        f"    source: {source}\n    contracts:\n"
        f"      - name: Registry\n        addresses: ['{REGISTRY}']\n"
        f"        events: ['{ADOPTED}', '{POOL_LISTED}']\n"
        f"      - name: Pool\n"
        f"        factory: {{contract: Registry, event: PoolListed, parameter: pool}}\n"
        f"        events: ['{LISTED}']\n"
        f"      - name: Token\n"
        f"        factory: {{contract: Pool, event: TokenListed, parameter: token}}\n"
        f"        events: ['{TRANSFER}']\n"
    )
    return project


def _stored(url: str, schema: str) -> tuple[dict[str, int], list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        moved = conn.execute(
            sql.SQL("SELECT id, total FROM {}.moved").format(sql.Identifier(schema))
        ).fetchall()
        children = conn.execute(
            sql.SQL(
                "SELECT contract, address, block_number, log_index FROM {}._indexer_children"
                " ORDER BY 3, 4"
            ).format(sql.Identifier(schema))
        ).fetchall()
    return {r[0]: int(r[1]) for r in moved}, [tuple(r) for r in children]


@pytest.mark.parametrize(
    ("limit", "span"),
    [(1_000, 2_000), (0, 2_000), (1_000, 1), (0, 1)],
    ids=["by-address", "by-topic", "by-address-block-by-block", "by-topic-block-by-block"],
)
def test_a_handler_registered_child_registers_its_children_from_their_block(
    tmp_path: Path, database_url: str, schema: str, limit: int, span: int
) -> None:
    chain = _chain()
    project = _project(
        tmp_path, schema, f"{{rpc: 'http://scripted.invalid/', child_address_limit: {limit}}}"
    )
    config = load_config(project)
    client = {"transport": RpcServer(chain).transport(), "backoff_base": 0.01}
    opts = RunOptions(
        database_url=database_url,
        handle_signals=False,
        write_interval=0.0,
        stall_seconds=float("inf"),
        reset=True,
        rpc_tuning={"client_options": client, "initial_span": span, "max_span": max(span, 2)},
    )

    async def go() -> None:
        await run_project(config, load_handlers(config), opts)

    run_driven(go)
    assert _stored(database_url, schema) == (EXPECTED_TOTALS, EXPECTED_CHILDREN)


def test_a_log_file_counts_the_same_grandchildren(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    chain = _chain()
    path = tmp_path / "logs.jsonl"
    with path.open("w") as out:
        for lg in chain.logs(1, chain.head):
            block = chain.block(int(lg["blockNumber"], 16))
            out.write(json.dumps({**lg, "blockTimestamp": hex(block.timestamp)}) + "\n")
    config = load_config(_project(tmp_path, schema, f"{{file: {path}}}"))
    opts = RunOptions(database_url=database_url, handle_signals=False, reset=True)

    async def go() -> None:
        await run_project(config, load_handlers(config), opts)

    trio.run(go)
    assert _stored(database_url, schema) == (EXPECTED_TOTALS, EXPECTED_CHILDREN)
