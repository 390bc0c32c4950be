"""Tests of the ERC20 example's handlers: a template for testing your own indexer.

Three levels, fastest first (docs/testing.md explains each):

1. Handlers in memory: build ``Transfer`` events from the ABI in indexer.yaml,
   send them through the handlers (the framework's own processor and store),
   read the ``Account`` entities back.  No node, no database; milliseconds.
2. The same with PostgreSQL behind the store: every send is committed, and
   reads come back from the database, so entities must survive the trip.
3. The whole project, run against a scripted chain, with a reorg in between
   two runs: what ``indexer run`` would do, minus the node.

Run them with ``pytest examples/erc20/tests``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import handlers  # the project's handlers module (conftest.py puts the project on sys.path)
from handlers import Account

from indexer.testing import (
    HandlerHarness,
    ScriptedChain,
    encode_log,
    make_log,
    open_handler_harness,
    read_entities,
    run_scripted,
)

if TYPE_CHECKING:
    from indexer import Event

PROJECT = Path(__file__).resolve().parent.parent  # holds indexer.yaml
TOKEN = "0x" + "a0" * 20
OTHER_TOKEN = "0x" + "b0" * 20
ZERO = "0x" + "00" * 20  # mints come from it, burns go to it
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b1" * 20
TRANSFER = "event Transfer(address indexed from, address indexed to, uint256 value)"


def transfer(
    h: HandlerHarness, sender: str, receiver: str, value: int, block: int, token: str = TOKEN
) -> Event:
    """A Transfer event as the handlers receive it, built with the ABI from indexer.yaml."""
    return h.event(
        "ERC20",
        "Transfer",
        {"from": sender, "to": receiver, "value": value},
        address=token,  # the contract lists no addresses: say which token emits it
        block_number=block,
    )


def key(holder: str, token: str = TOKEN) -> str:
    return f"{token}-{holder}"


# -- 1. handlers in memory ----------------------------------------------------


async def test_mint_then_transfer() -> None:
    # handlers=handlers: the harness runs the module this test imported, so
    # `Account` here is the class the store holds.
    h = HandlerHarness(PROJECT, handlers=handlers)
    await h.send(
        transfer(h, ZERO, ALICE, 100, block=1),
        transfer(h, ALICE, BOB, 30, block=2),
    )
    assert h.get(Account, key(ALICE)) == Account(
        id=key(ALICE), token=TOKEN, holder=ALICE, balance=70, transfers=2
    )
    bob = h.get(Account, key(BOB))
    assert bob is not None
    assert (bob.balance, bob.transfers) == (30, 1)
    # The zero address pays for the mint: balances of a token sum to zero.
    assert sum(a.balance for a in h.all(Account).values()) == 0
    assert h.get(Account, key("0x" + "99" * 20)) is None


async def test_tokens_are_kept_apart_and_addresses_are_lowercase() -> None:
    h = HandlerHarness(PROJECT, handlers=handlers)
    mixed_case = "0x" + "A1a1" * 10  # ALICE, in the mixed case wallets show
    await h.send(
        transfer(h, ZERO, mixed_case, 5, block=1),
        transfer(h, ZERO, ALICE, 7, block=1, token=OTHER_TOKEN),
    )
    # The decoder lowercases addresses, as it does for logs from a node.
    assert set(h.all(Account)) == {
        key(ZERO),
        key(ALICE),
        key(ZERO, OTHER_TOKEN),
        key(ALICE, OTHER_TOKEN),
    }
    alice = h.get(Account, key(ALICE))
    assert alice is not None
    assert alice.balance == 5


async def test_erc721_transfers_share_the_topic_and_are_skipped() -> None:
    h = HandlerHarness(PROJECT, handlers=handlers)
    # A raw log goes through the framework's routing and decoding, as in a
    # run: an ERC721 Transfer (tokenId indexed: four topics) does not fit the
    # ERC20 ABI, so this wildcard contract skips it.
    nft = make_log(
        "event Transfer(address indexed from, address indexed to, uint256 indexed tokenId)",
        {"from": ZERO, "to": ALICE, "tokenId": 1},
        address=OTHER_TOKEN,
        block_number=1,
    )
    erc20 = make_log(
        TRANSFER, {"from": ZERO, "to": ALICE, "value": 1}, address=TOKEN, block_number=1
    )
    await h.send(nft, erc20)
    assert h.skipped == {"ERC20.Transfer": 1}
    assert set(h.all(Account)) == {key(ZERO), key(ALICE)}


# -- 2. with PostgreSQL --------------------------------------------------------


async def test_balances_round_trip_through_postgres(database_url: str, schema: str) -> None:
    async with open_handler_harness(
        PROJECT, handlers=handlers, database_url=database_url, schema=schema
    ) as h:
        await h.send(transfer(h, ZERO, ALICE, 10**30, block=1))  # beyond 64 bits: numeric(78,0)
        h.evict()  # empty memory: the next handler loads Alice from the database
        await h.send(transfer(h, ALICE, BOB, 1, block=2))
        # get/all read the database, where every send was committed.
        alice = h.get(Account, key(ALICE))
        assert alice is not None
        assert (alice.balance, alice.transfers) == (10**30 - 1, 2)
    rows = read_entities(database_url, schema, Account)
    assert {k: a.balance for k, a in rows.items()} == {
        key(ZERO): -(10**30),
        key(ALICE): 10**30 - 1,
        key(BOB): 1,
    }


# -- 3. the whole project against a scripted chain, with a reorg ----------------


async def test_a_reorg_between_runs_is_rolled_back(database_url: str, schema: str) -> None:
    chain = ScriptedChain(
        1,
        head=10,
        logs={
            2: [encode_log(TRANSFER, {"from": ZERO, "to": ALICE, "value": 50}, address=TOKEN)],
            9: [encode_log(TRANSFER, {"from": ALICE, "to": BOB, "value": 20}, address=TOKEN)],
        },
    )
    # indexer.yaml reads a file from block 18426253: the scripted chain
    # replaces the source, and the run starts at block 1.
    first = await run_scripted(
        PROJECT, chain, database_url=database_url, schema=schema, start_block=1
    )
    assert first.chains[1][0] == 10  # indexed up to the head
    balances = {a.holder: a.balance for a in read_entities(database_url, schema, Account).values()}
    assert balances == {ZERO: -50, ALICE: 30, BOB: 20}

    # Blocks 8..10 are replaced: Alice now pays Bob 5 instead of 20, at block 9.
    chain.reorg(
        3, {9: [encode_log(TRANSFER, {"from": ALICE, "to": BOB, "value": 5}, address=TOKEN)]}
    )
    second = await run_scripted(
        PROJECT, chain, database_url=database_url, schema=schema, start_block=1
    )
    # The run found blocks it had indexed gone, rolled back to block 7, and went on.
    assert [(chain_id, block) for chain_id, block, _rows, _s in second.rollbacks] == [(1, 7)]
    rows = read_entities(database_url, schema, Account)
    assert {a.holder: (a.balance, a.transfers) for a in rows.values()} == {
        ZERO: (-50, 1),
        ALICE: (45, 2),
        BOB: (5, 1),
    }
