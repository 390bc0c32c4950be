"""Factory contracts: config errors, and whole runs whose children equal a replay of the chain."""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest
import trio
from psycopg import sql

from indexer import ConfigError, RunOptions, load_config, load_handlers, run_project
from indexer.testing import RpcServer, ScriptedChain, encode_log

from ._factory_chain import (
    ADOPTED,
    CANDIDATES,
    LISTED,
    REGISTRY,
    TRANSFER,
    factory_logs,
    make_factory_project,
    model,
    stored,
)
from ._gate import run_driven

if TYPE_CHECKING:
    from pathlib import Path


def _run(project: Path, url: str, chain: ScriptedChain, end: int, **options: object) -> None:
    config = load_config(project)
    chain_config = config.chains[0]
    config = dataclasses.replace(config, chains=(dataclasses.replace(chain_config, end_block=end),))
    handlers = load_handlers(config)
    client = {"transport": RpcServer(chain).transport(), "backoff_base": 0.01}
    opts = RunOptions(
        database_url=url,
        handle_signals=False,
        write_interval=0.0,
        stall_seconds=float("inf"),
        rpc_tuning={"client_options": client, **options.pop("rpc_tuning", {})},  # type: ignore[dict-item]
        **options,  # type: ignore[arg-type]
    )

    async def go() -> None:
        await run_project(config, handlers, opts)

    run_driven(go)


def test_children_from_their_registering_block_through_reorg_and_restart(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    rng = random.Random(3)
    chain = ScriptedChain(1, head=12, logs=factory_logs(rng, range(1, 13)))
    token = "0x" + "d1" * 20  # new addresses: no random log registers them
    assert token not in CANDIDATES
    # Block 13: the token's constructor Transfer, then its listing, then a
    # Transfer after it; block 14: an adoption after a Transfer of another
    # token (not counted: before its log), and one after (counted).
    other = "0x" + "d2" * 20
    chain.advance(
        2,
        {
            13: [
                encode_log(
                    TRANSFER,
                    {"from": "0x" + "00" * 20, "to": "0x" + "01" * 20, "value": 5},
                    address=token,
                ),
                encode_log(LISTED, {"token": token, "index": 1}, address=REGISTRY),
                encode_log(
                    TRANSFER,
                    {"from": "0x" + "01" * 20, "to": "0x" + "02" * 20, "value": 2},
                    address=token,
                ),
            ],
            14: [
                encode_log(
                    TRANSFER,
                    {"from": "0x" + "00" * 20, "to": "0x" + "03" * 20, "value": 7},
                    address=other,
                ),
                encode_log(ADOPTED, {"token": other}, address=REGISTRY),
                encode_log(
                    TRANSFER,
                    {"from": "0x" + "03" * 20, "to": "0x" + "04" * 20, "value": 1},
                    address=other,
                ),
            ],
        },
    )
    project = make_factory_project(
        tmp_path, schema, "{rpc: 'http://scripted.invalid/'}", end_block=None
    )
    _run(project, database_url, chain, 14, reset=True)
    assert stored(database_url, schema) == model(chain)
    holdings, _rows = stored(database_url, schema)
    assert holdings[f"{token}:0x{'01' * 20}"] == (7, 2)  # the constructor's Transfer counts
    assert holdings[f"{other}:0x{'03' * 20}"] == (1, 1)  # the Transfer before the adoption does not
    # A reorg that orphans the registrations of blocks 13 and 14.
    chain.reorg(2, factory_logs(rng, range(13, 16)), length=3)
    _run(project, database_url, chain, 15)
    assert stored(database_url, schema) == model(chain)
    # A restart: registrations come back from the table.
    chain.advance(3, factory_logs(rng, range(16, 19)))
    _run(project, database_url, chain, 18)
    assert stored(database_url, schema) == model(chain)


@pytest.mark.parametrize("lost", [False, True], ids=["answered", "lost-answer"])
def test_a_rollback_forgets_the_orphaned_registrations_in_memory(
    tmp_path: Path, database_url: str, schema: str, lost: bool
) -> None:
    """A run rolls back registrations it holds in memory, also when the rollback's answer is lost
    (it committed; the writer reloads them from the table).

    The new branch lists the orphaned token again: a registration still
    in memory would make that listing a no-op, and its row would be missing.
    """
    rng = random.Random(4)
    chain = ScriptedChain(1, head=12, logs=factory_logs(rng, range(1, 13)))
    token, holder = "0x" + "d3" * 20, "0x" + "05" * 20
    assert token not in CANDIDATES
    listed = [
        encode_log(TRANSFER, {"from": "0x" + "00" * 20, "to": holder, "value": 9}, address=token),
        encode_log(LISTED, {"token": token, "index": 2}, address=REGISTRY),
    ]
    chain.advance(1, {13: listed})
    project = make_factory_project(
        tmp_path, schema, "{rpc: 'http://scripted.invalid/'}", end_block=None
    )
    _run(project, database_url, chain, 13, reset=True)
    assert stored(database_url, schema) == model(chain)
    branch = factory_logs(rng, range(12, 15))
    branch[14] = [*branch[14], *listed]
    chain.reorg(2, branch, length=3)
    seen: list[str] = []

    def fault(step: str) -> None:
        seen.append(step)
        if lost and step == "rolled back" and seen.count(step) == 1:
            raise psycopg.OperationalError("simulated: connection lost after the rollback's COMMIT")

    _run(project, database_url, chain, 14, fault=fault)
    assert "rolled back" in seen
    holdings, rows = stored(database_url, schema)
    assert (holdings, rows) == model(chain)
    assert any(token in row for row in rows)


def _config(
    tmp_path: Path, token: str, registry_events: str = f'["{LISTED}", "{ADOPTED}"]'
) -> Path:
    (tmp_path / "handlers.py").write_text("")
    (tmp_path / "indexer.yaml").write_text(
        "name: f\nhandlers: handlers.py\nchains:\n  - id: 1\n    start_block: 1\n"
        "    source: {rpc: 'http://localhost:8545'}\n    contracts:\n"
        f"      - name: Registry\n        addresses: ['{REGISTRY}']\n        events: {registry_events}\n"
        f"      - name: Token\n{token}"
        f"        events: ['{TRANSFER}']\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    ("factory", "where", "what"),
    [
        (
            "{contract: Nope, event: TokenListed, parameter: token}",
            "factory.contract",
            "'Nope' is not a contract",
        ),
        (
            "{contract: Registry, event: Gone, parameter: token}",
            "factory.event",
            "'Gone' is not an event of contract 'Registry'",
        ),
        (
            "{contract: Registry, event: [TokenListed, Gone], parameter: token}",
            "factory.event[1]",
            "'Gone'",
        ),
        (
            "{contract: Registry, event: TokenListed, parameter: nope}",
            "factory.parameter",
            "'nope' is not a parameter",
        ),
        (
            "{contract: Registry, event: TokenListed, parameter: index}",
            "factory.parameter",
            "is a uint256, not an address",
        ),
        (
            "{contract: Token, event: Transfer, parameter: from}",
            "factory.contract",
            "cannot be its own factory",
        ),
        ("{contract: Registry, event: TokenListed}", "factory", "parameter"),
    ],
)
def test_factory_config_errors_name_the_key(
    tmp_path: Path, factory: str, where: str, what: str
) -> None:
    project = _config(tmp_path, f"        factory: {factory}\n")
    with pytest.raises(ConfigError) as info:
        load_config(project)
    message = str(info.value)
    assert f"chains[0].contracts[1].{where}" in message, message
    assert what in message, message


def test_factory_config_refuses_addresses_and_cycles(tmp_path: Path) -> None:
    project = _config(
        tmp_path,
        "        factory: {contract: Registry, event: TokenListed, parameter: token}\n"
        f"        addresses: ['{REGISTRY}']\n",
    )
    with pytest.raises(
        ConfigError, match=r"contracts\[1\]\.addresses: cannot be given with `factory`"
    ):
        load_config(project)
    # Registry's children are Tokens and Tokens' children Registries: a cycle.
    (tmp_path / "indexer.yaml").write_text(
        "name: f\nhandlers: handlers.py\nchains:\n  - id: 1\n    start_block: 1\n"
        "    source: {rpc: 'http://localhost:8545'}\n    contracts:\n"
        "      - name: A\n        factory: {contract: B, event: Made, parameter: child}\n"
        "        events: ['event Made(address child)']\n"
        "      - name: B\n        factory: {contract: A, event: Made, parameter: child}\n"
        "        events: ['event Made(address child)', 'event Other(address x)']\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"contracts\[0\]\.factory\.contract: the factories form a cycle \(A <- B <- A\)",
    ):
        load_config(project)
    config = load_config(
        _config(
            tmp_path,
            "        factory: {contract: Registry, event: TokenListed, parameter: token}\n",
        )
    )
    token = config.chains[0].contracts[1]
    assert token.addresses is None
    assert token.factory is not None
    assert token.factory.events == ("TokenListed",)


def test_file_source_indexes_the_same_children(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """A log file holds every log: the reader delivers the children's topics, the loop filters."""
    import json

    rng = random.Random(8)
    chain = ScriptedChain(1, head=40, logs=factory_logs(rng, range(1, 41), per_block=6))
    path = tmp_path / "logs.jsonl"
    with path.open("w") as out:
        for lg in chain.logs(1, chain.head):
            block = chain.block(int(lg["blockNumber"], 16))
            out.write(json.dumps({**lg, "blockTimestamp": hex(block.timestamp)}) + "\n")
    project = make_factory_project(tmp_path, schema, f"{{file: {path}}}", end_block=40)
    config = load_config(project)
    opts = RunOptions(database_url=database_url, handle_signals=False, reset=True, chunk_logs=7)

    async def go() -> None:
        await run_project(config, load_handlers(config), opts)

    import trio

    trio.run(go)
    assert stored(database_url, schema) == model(chain)
    assert model(chain)[1], "the chain registers children"


SENDER_HANDLERS = """
from indexer import Context, Entity, Event, on


class Sent(Entity):
    id: str  # "<block>-<log index>"
    sender: str  # the transaction's `from`


@on("Registry", "Adopted")
async def adopted(event: Event, ctx: Context) -> None:
    ctx.add_contract("Token", event.params["token"])


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    ctx.set(Sent(f"{event.block_number}-{event.log_index}", event.transaction.from_))
"""


def test_a_child_fetched_again_carries_its_selected_fields(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """A handler's registration makes its range be fetched again: with the selected fields too."""
    token = "0x" + "d3" * 20
    transfer = {"from": "0x" + "01" * 20, "to": "0x" + "02" * 20, "value": 3}
    chain = ScriptedChain(
        1,
        head=4,
        logs={
            2: [
                encode_log(ADOPTED, {"token": token}, address=REGISTRY),
                encode_log(TRANSFER, transfer, address=token),
            ],
            4: [encode_log(TRANSFER, transfer, address=token)],
        },
    )
    project = make_factory_project(
        tmp_path, schema, "{rpc: 'http://scripted.invalid/'}", end_block=None
    )
    (project / "handlers.py").write_text(SENDER_HANDLERS)
    config = (project / "indexer.yaml").read_text()
    (project / "indexer.yaml").write_text(
        config.replace(
            "    max_reorg_depth:",
            "    field_selection: {transaction: [from]}\n    max_reorg_depth:",
        )
    )
    _run(project, database_url, chain, 4, reset=True)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT id, sender FROM {}.sent ORDER BY id").format(sql.Identifier(schema))
        ).fetchall()
    # The node's own answer for each of the token's logs' transactions.
    senders = trio.run(
        _senders, RpcServer(chain), [lg for lg in chain.logs(1, 4) if lg["address"] == token]
    )
    assert rows == senders
    assert len(rows) == 2


async def _senders(server: RpcServer, logs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    async with httpx.AsyncClient(transport=server.transport()) as client:
        for log in logs:
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionByHash",
                    "params": [log["transactionHash"]]}  # fmt: skip
            tx = (await client.post("http://node/", json=body)).json()["result"]
            out.append((f"{int(log['blockNumber'], 16)}-{int(log['logIndex'], 16)}", tx["from"]))
    return out
