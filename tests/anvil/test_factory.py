"""A factory on anvil: CREATE2 children indexed through a reorg that orphans creations and a restart.

TokenFactory (tests/contracts/TokenFactory.sol) deploys ChildTokens with
CREATE2; each mints in its constructor (a Transfer before the factory's
TokenCreated in the same transaction) and transfers later.  ``indexer run``
follows the node with ``factory:`` config into per-(token, holder)
holdings.  The oracle is the node alone: the canonical children are the
factory's TokenCreated logs, each holding is the child's ``balanceOf``.

A decoy TestToken, never registered, emits Transfers too: once the children
outnumber ``child_address_limit`` the source fetches Transfers by topic, and
the decoy's must be dropped.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from eth_abi.abi import decode as abi_decode
from eth_hash.auto import keccak
from psycopg import sql

from ._indexer import Followed, IndexerCli, wait_caught_up
from ._node import (
    FACTORY_ARTIFACT,
    GAS,
    PASSIVE,
    TRANSFER,
    calldata,
    deploy_token,
    revert,
    snapshot,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from ._node import Anvil

pytestmark = pytest.mark.anvil

CREATED = "0x" + keccak(b"TokenCreated(address,bytes32)").hex()
CREATE = "create(bytes32,address,uint256)"
# Past this many children the source asks for Transfers by topic (and must
# drop the decoy's): the run crosses it after the restart.
CHILD_ADDRESS_LIMIT = 6

HANDLERS = '''
"""One child token's balance of one holder; deleted at zero."""

from indexer import Context, Entity, Event, on

ZERO = "0x" + "0" * 40


class Holding(Entity):
    id: str  # "<token>:<holder>"
    token: str
    holder: str
    balance: int


async def add(ctx: Context, token: str, holder: str, delta: int) -> None:
    key = f"{token}:{holder}"
    old = await ctx.get(Holding, key)
    balance = (old.balance if old else 0) + delta
    if balance == 0:
        ctx.delete(Holding, key)
    else:
        ctx.set(Holding(id=key, token=token, holder=holder, balance=balance))


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    sender, receiver = event.params["from"], event.params["to"]
    if sender != ZERO:
        await add(ctx, event.address, sender, -event.params["value"])
    if receiver != ZERO:
        await add(ctx, event.address, receiver, event.params["value"])
'''


def write_project(directory: Path, schema: str, node: Anvil, factory: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "handlers.py").write_text(HANDLERS)
    (directory / "indexer.yaml").write_text(
        f"name: anvil-factory\nhandlers: handlers.py\nschema: {schema}\nchains:\n"
        f"  - id: {node.chain_id}\n    start_block: 0\n    max_reorg_depth: 20\n"
        f"    source: {{rpc: '{node.url}', poll_interval: 0.1,"
        f" child_address_limit: {CHILD_ADDRESS_LIMIT}}}\n"
        "    contracts:\n"
        f"      - name: Factory\n        addresses: ['{factory}']\n"
        "        events: ['event TokenCreated(address indexed token, bytes32 salt)']\n"
        "      - name: Token\n"
        "        factory: {contract: Factory, event: TokenCreated, parameter: token}\n"
        "        events: ['event Transfer(address indexed from, address indexed to,"
        " uint256 value)']\n"
    )
    return directory


def _call(node: Anvil, calls: Sequence[tuple[str, str]], tag: str = "latest") -> list[Any]:
    """eth_call of (to, calldata) pairs in one batch; the raw answers."""
    return node.batch([("eth_call", [{"to": to, "data": data}, tag]) for to, data in calls])


@dataclass
class FactoryChain:
    """The factory on one node, and random creations and transfers of its children.

    Transfers spend at most what the sender holds at the latest block, one
    per (sender, token) per block, so none reverts; every mined transaction
    is checked to have succeeded.
    """

    node: Anvil
    factory: str
    decoy: str
    rng: random.Random
    salts: int = 0
    creations: int = 0
    made: dict[int, tuple[str, str, int]] = field(default_factory=dict)  # salt -> creation
    sent: int = 0

    @property
    def holders(self) -> list[str]:
        return self.node.accounts[:6]

    def children(self) -> list[tuple[str, int, int]]:
        """The canonical children: (address, block, log index) of every TokenCreated."""
        logs = self.node.rpc(
            "eth_getLogs",
            {"fromBlock": "0x0", "toBlock": "latest", "address": self.factory, "topics": [CREATED]},
        )
        return [
            ("0x" + lg["topics"][1][-40:], int(lg["blockNumber"], 16), int(lg["logIndex"], 16))
            for lg in logs
        ]

    def creation(self, salt: int | None = None) -> tuple[dict[str, Any], str, str, int]:
        """A create transaction (a new salt, or ``salt`` again with its first arguments);
        with the child's address, its holder and its mint."""
        if salt is None:
            salt, self.salts = self.salts, self.salts + 1
            holder = self.holders[salt % len(self.holders)]
            self.made[salt] = ("", holder, self.rng.randint(10**18, 10**21))
        _address, holder, value = self.made[salt]
        data = calldata(CREATE, salt.to_bytes(32, "big"), holder, value)
        # CREATE2: the address depends on the salt and the arguments only,
        # so a call on the latest state tells where the transaction will put it.
        (answer,) = _call(self.node, [(self.factory, data)])
        address = "0x" + answer[-40:]
        self.made[salt] = (address, holder, value)
        self.creations += 1
        tx = {"from": holder, "to": self.factory, "data": data, "gas": hex(1_000_000)}
        return tx, address, holder, value

    def transfers(
        self, tokens: Sequence[str], minted: tuple[str, int] | None = None
    ) -> list[dict[str, Any]]:
        """At most one transfer per (holder, token), within the latest balances.

        ``minted``: (holder, value) of a token not created yet, whose mint
        is all it holds in the block that creates it.
        """
        pairs = [(t, h) for t in tokens for h in self.holders]
        if minted is None:
            answers = _call(self.node, [(t, calldata("balanceOf(address)", h)) for t, h in pairs])
            balances = [_uint(a) for a in answers]
        else:
            balances = [minted[1] if h == minted[0] else 0 for _t, h in pairs]
        txs = []
        for (token, holder), balance in zip(pairs, balances, strict=True):
            if balance == 0 or (minted is None and self.rng.random() < 0.4):
                continue
            value = balance if self.rng.random() < 0.2 else self.rng.randint(1, balance)
            to = self.rng.choice([*self.node.accounts, *PASSIVE])
            data = calldata("transfer(address,uint256)", to, value)
            txs.append({"from": holder, "to": token, "data": data, "gas": GAS})
        return txs

    def decoy_mint(self) -> dict[str, Any]:
        to = self.rng.choice(self.holders)
        data = calldata("mint(address,uint256)", to, self.rng.randint(1, 10**20))
        return {"from": self.node.accounts[9], "to": self.decoy, "data": data, "gas": GAS}

    def block(self, create: int = 0, again: Sequence[int] = (), others: bool = True) -> list[str]:
        """Mine one block: ``create`` new children and the ``again`` salts created again, each
        followed in the block by a transfer of its mint; transfers of the older children
        (unless not ``others``); a decoy mint.  The addresses created."""
        live = [a for a, _b, _i in self.children()]
        txs, made = self.transfers(live) if others else [], []
        for salt in [None] * create + list(again):
            tx, address, holder, value = self.creation(salt)
            txs += [tx, *self.transfers([address], (holder, value))]
            made.append(address)
        txs.append(self.decoy_mint())
        self.mine(txs)
        return made

    def mine(self, txs: Sequence[dict[str, Any]]) -> None:
        hashes = [self.node.send(tx) for tx in txs]
        self.node.mine()
        receipts = self.node.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        failed = [r for r in receipts if r is None or r["status"] != "0x1"]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(txs)} transactions failed: {failed[0]}")
        self.sent += len(txs)

    def holdings(self) -> dict[str, int]:
        """Every (child, holder) that ever held or received, with its balanceOf at the head."""
        children = [a for a, _b, _i in self.children()]
        logs = (
            self.node.rpc(
                "eth_getLogs",
                {
                    "fromBlock": "0x0",
                    "toBlock": "latest",
                    "address": children,
                    "topics": [TRANSFER],
                },
            )
            if children
            else []
        )
        pairs = sorted(
            {(lg["address"].lower(), "0x" + t[-40:]) for lg in logs for t in lg["topics"][1:3]}
            | {(c, h) for c in children for h in self.node.accounts}
        )
        pairs = [(c, h) for c, h in pairs if h != "0x" + "0" * 40]
        answers = _call(self.node, [(c, calldata("balanceOf(address)", h)) for c, h in pairs])
        return {f"{c}:{h}": _uint(a) for (c, h), a in zip(pairs, answers, strict=True)}


def _uint(answer: str) -> int:
    value: int = abi_decode(["uint256"], bytes.fromhex(answer[2:]))[0]
    return value


def deploy_factory(node: Anvil) -> str:
    bytecode = json.loads(FACTORY_ARTIFACT.read_text())["bytecode"]
    tx = node.send({"from": node.accounts[0], "data": bytecode, "gas": hex(3_000_000)})
    node.mine()
    receipt = node.rpc("eth_getTransactionReceipt", tx)
    if receipt is None or receipt["status"] != "0x1":
        raise RuntimeError(f"TokenFactory deployment failed: {receipt}")
    return str(receipt["contractAddress"]).lower()


def stored(database_url: str, schema: str) -> tuple[dict[str, int], set[tuple[str, int, int]], int]:
    """(holdings, registered children (address, block, log index), events processed)."""
    with psycopg.connect(database_url) as conn:

        def rows(query: str) -> list[tuple[Any, ...]]:
            return conn.execute(sql.SQL(query).format(sql.Identifier(schema))).fetchall()

        holdings = {str(i): int(str(b)) for i, b in rows("SELECT id, balance FROM {}.holding")}
        children = {
            (str(a), int(b), int(i))
            for a, b, i in rows(
                "SELECT address, block_number, log_index FROM {}._indexer_children"
                " WHERE contract = 'Token'"
            )
        }
        ((events,),) = rows("SELECT events_processed FROM {}._indexer_chains")
    return holdings, children, int(events)


def check(chain: FactoryChain, database_url: str, schema: str) -> tuple[int, int]:
    """The tables equal the node; (children, holdings compared)."""
    want = chain.holdings()
    holdings, children, events = stored(database_url, schema)
    canonical = set(chain.children())
    assert children == canonical
    # Equal as a whole: no holding of an orphaned child, nor of the decoy.
    assert holdings == {k: v for k, v in want.items() if v}
    transfers = chain.node.rpc(
        "eth_getLogs",
        {
            "fromBlock": "0x0",
            "toBlock": "latest",
            "address": [a for a, _b, _i in canonical],
            "topics": [TRANSFER],
        },
    )
    assert events == len(canonical) + len(transfers)
    return len(canonical), len(want)


def test_factory_children_through_a_reorg_and_a_restart(
    start_anvil: Callable[[int], Anvil],
    tmp_path: Path,
    database_url: str,
    schema: str,
) -> None:
    node = start_anvil(31337)
    factory = deploy_factory(node)
    chain = FactoryChain(node, factory, deploy_token(node), random.Random(15))
    project = write_project(tmp_path / "project", schema, node, factory)
    cli = IndexerCli(project, database_url, tmp_path, [node])
    followed = [Followed(node, factory)]

    def settle() -> None:
        wait_caught_up(database_url, schema, followed, cli)

    try:
        cli.start()
        # Several children over several blocks, two in one block.
        for create in (1, 2, 0, 1):
            chain.block(create)
        settle()
        check(chain, database_url, schema)

        # A fork orphans two creations (salts 4 and 5) and their transfers:
        # the blocks are committed, then replaced by a longer branch without them.
        mark = snapshot(node)
        (again,) = chain.block(1)
        (gone,) = chain.block(1)
        chain.block()
        settle()
        _h, registered, _e = stored(database_url, schema)
        assert {again, gone} <= {a for a, _b, _i in registered}
        revert(node, mark)
        for _ in range(4):
            chain.block()
        settle()
        check(chain, database_url, schema)
        # Salt 4 again, in another block: the same address, registered anew.
        assert chain.block(again=[4]) == [again]
        settle()
        check(chain, database_url, schema)

        # A restart in the middle: stopped, children created while down (the
        # catch-up range holds creations and their transfers), started again.
        assert cli.stop() == 0, cli.tail()
        chain.block(2)
        chain.block(1)
        chain.block()
        cli.start()
        settle()
        check(chain, database_url, schema)

        # anvil_reorg orphans one more creation (salt 9) while following; the
        # replacing block has a transfer of an older child instead.
        # The block holds no transfer of older children: a transfer planned
        # on the latest balances then fits its replacement too.
        (late,) = chain.block(1, others=False)
        settle()
        assert late in {a for a, _b, _i in stored(database_url, schema)[1]}
        old = [a for a, _b, _i in chain.children() if a != late]
        replacing = chain.transfers(old)[:1] or [chain.decoy_mint()]
        node.rpc("anvil_reorg", 1, [[tx, 0] for tx in replacing])
        chain.block()
        settle()
        children, compared = check(chain, database_url, schema)
        assert late not in {a for a, _b, _i in chain.children()}
        assert gone not in {a for a, _b, _i in chain.children()}
        assert children > CHILD_ADDRESS_LIMIT  # the topic mode was used at the end
        assert cli.stop() == 0, cli.tail()
        assert "Traceback" not in cli.all_stderr()
        # Both forks replaced committed blocks: each was found and rolled back.
        assert len(cli.rollbacks()) == 2, cli.rollbacks()
    finally:
        cli.kill()
    print(
        f"factory: {chain.creations} creations, {children} children at the end, 3 orphaned "
        f"by reorgs (1 created again at its address), {compared} holdings compared with "
        f"balanceOf, {chain.sent} transactions, {len(cli.rollbacks())} rollbacks logged"
    )
