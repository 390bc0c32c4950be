"""A factory on a scripted chain: logs, a project that indexes its children, and the model.

The registry (``REGISTRY``) announces tokens two ways: ``TokenListed``
registers through the ``factory`` key (no handler), ``Adopted`` through a
handler calling ``ctx.add_contract``.  Tokens are drawn from ``CANDIDATES``,
so some emit Transfers before, in and after the block that registers them,
and some are never registered; ``STRANGER`` shares the Transfer topic0 with
four topics (an ERC721), which must be dropped and never fail decoding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from indexer.testing import LogSpec, encode_log

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from indexer.testing import ScriptedChain

REGISTRY = "0x" + "e0" * 20
CANDIDATES = tuple("0x" + f"{0xC0 + i:02x}" * 20 for i in range(5))
STRANGER = "0x" + "5e" * 20
HOLDERS = tuple("0x" + f"{i:040x}" for i in range(1, 5))
LISTED = "event TokenListed(address indexed token, uint256 index)"
ADOPTED = "event Adopted(address token)"
TRANSFER = "event Transfer(address indexed from, address indexed to, uint256 value)"
NFT_TRANSFER = "event Transfer(address indexed from, address indexed to, uint256 indexed id)"

HANDLERS = """
from indexer import Context, Entity, Event, on


class Holding(Entity):
    id: str  # "<token>:<holder>"
    moved: int  # value sent plus value received
    transfers: int


@on("Registry", "Adopted")
async def adopted(event: Event, ctx: Context) -> None:
    ctx.add_contract("Token", event.params["token"])


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    for holder in (event.params["from"], event.params["to"]):
        key = f"{event.address}:{holder}"
        old = await ctx.get(Holding, key) or Holding(key, 0, 0)
        ctx.set(old.replace(moved=old.moved + event.params["value"], transfers=old.transfers + 1))
"""


def factory_logs(
    rng: random.Random, blocks: Iterable[int], per_block: int = 4
) -> dict[int, list[LogSpec]]:
    """Random registry and token logs for ``blocks``."""
    out: dict[int, list[LogSpec]] = {}
    for n in blocks:
        logs = []
        for _ in range(rng.randint(0, per_block)):
            kind = rng.random()
            token = rng.choice(CANDIDATES)
            if kind < 0.15:
                logs.append(encode_log(LISTED, {"token": token, "index": n}, address=REGISTRY))
            elif kind < 0.25:
                logs.append(encode_log(ADOPTED, {"token": token}, address=REGISTRY))
            elif kind < 0.3:
                a, b = rng.sample(HOLDERS, 2)
                logs.append(
                    encode_log(NFT_TRANSFER, {"from": a, "to": b, "id": n}, address=STRANGER)
                )
            else:
                a, b = rng.sample(HOLDERS, 2)
                value = rng.randint(1, 9)
                logs.append(
                    encode_log(TRANSFER, {"from": a, "to": b, "value": value}, address=token)
                )
        out[n] = logs
    return out


def make_factory_project(
    tmp: Path, schema: str, source: str, *, end_block: int | None, max_reorg_depth: int = 4
) -> Path:
    """A project over the registry; ``source`` is the YAML of its ``source`` value."""
    project = tmp / "factory"
    project.mkdir(exist_ok=True)
    (project / "handlers.py").write_text(HANDLERS)
    end = f"    end_block: {end_block}\n" if end_block is not None else ""
    (project / "indexer.yaml").write_text(
        f"name: factory-test\n"
        f"handlers: handlers.py\n"
        f"schema: {schema}\n"
        f"chains:\n"
        f"  - id: 1\n"
        f"    start_block: 1\n"
        f"{end}"
        f"    max_reorg_depth: {max_reorg_depth}\n"
        f"    source: {source}\n"
        f"    contracts:\n"
        f"      - name: Registry\n"
        f'        addresses: ["{REGISTRY}"]\n'
        f'        events: ["{LISTED}", "{ADOPTED}"]\n'
        f"      - name: Token\n"
        f"        factory: {{contract: Registry, event: TokenListed, parameter: token}}\n"
        f'        events: ["{TRANSFER}"]\n'
    )
    return project


def _decoded(logs: Sequence[dict[str, Any]]) -> list[tuple[int, int, str, tuple[str, ...], str]]:
    return [
        (
            int(lg["blockNumber"], 16),
            int(lg["logIndex"], 16),
            lg["address"],
            tuple(lg["topics"]),
            lg["data"],
        )
        for lg in logs
    ]


def model(
    chain: ScriptedChain, last: int | None = None
) -> tuple[dict[str, tuple[int, int]], list[tuple[Any, ...]]]:
    """(holdings, children rows) from replaying the canonical chain, the plain way.

    A TokenListed registers its token from the start of its block; an
    Adopted from its own log on.  The row of a child is its first
    registering log (block, log index).
    """
    from eth_abi.abi import decode

    last = chain.head if last is None else last
    listed_topic = "0x" + _topic0(LISTED)
    adopted_topic = "0x" + _topic0(ADOPTED)
    transfer_topic = "0x" + _topic0(TRANSFER)
    by_block: dict[int, list[tuple[int, int, str, tuple[str, ...], str]]] = {}
    for row in _decoded(chain.logs(1, last)):
        by_block.setdefault(row[0], []).append(row)
    since: dict[str, int] = {}  # token -> block from which its logs count
    first_row: dict[str, tuple[int, int]] = {}
    holdings: dict[str, tuple[int, int]] = {}
    for n in sorted(by_block):
        logs = by_block[n]
        for _b, _i, address, topics, _data in logs:
            if address == REGISTRY and topics[0] == listed_topic:
                since.setdefault("0x" + topics[1][-40:], n)
        for _b, index, address, topics, data in logs:
            if address == REGISTRY:
                if topics[0] == listed_topic:
                    token = "0x" + topics[1][-40:]
                else:
                    assert topics[0] == adopted_topic
                    (token,) = decode(["address"], bytes.fromhex(data[2:]))
                    token = token.lower()
                    since.setdefault(token, n)
                first_row.setdefault(token, (n, index))
            elif (
                topics[0] == transfer_topic and len(topics) == 3 and since.get(address, n + 1) <= n
            ):
                (value,) = decode(["uint256"], bytes.fromhex(data[2:]))
                for holder in ("0x" + topics[1][-40:], "0x" + topics[2][-40:]):
                    key = f"{address}:{holder}"
                    moved, count = holdings.get(key, (0, 0))
                    holdings[key] = (moved + value, count + 1)
    rows = sorted((1, "Token", token, b, i) for token, (b, i) in first_row.items())
    return holdings, rows


def _topic0(signature: str) -> str:
    from indexer.abi import parse_event_signature

    return parse_event_signature(signature).topic0[2:]


def stored(url: str, schema: str) -> tuple[dict[str, tuple[int, int]], list[tuple[Any, ...]]]:
    """(holdings, children rows) as the database holds them."""
    with psycopg.connect(url) as conn:
        holdings = conn.execute(
            sql.SQL("SELECT id, moved, transfers FROM {}.holding").format(sql.Identifier(schema))
        ).fetchall()
        children = conn.execute(
            sql.SQL(
                "SELECT chain_id, contract, address, block_number, log_index FROM {}._indexer_children"
                " ORDER BY 1, 2, 3"
            ).format(sql.Identifier(schema))
        ).fetchall()
    return {r[0]: (int(r[1]), int(r[2])) for r in holdings}, [tuple(r) for r in children]
