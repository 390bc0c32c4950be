"""The testing kit: building events, the handler harness, scripted runs, reading tables back.

Results are checked against the independent oracle of ``_chains.expected``
(computed from the scripted chain's canonical logs) and against eth-abi.
"""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import trio
import trio.testing
from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak
from psycopg import sql

from indexer import (
    DatabaseError,
    DecodeError,
    HandlerError,
    RunOptions,
    RunStatus,
    RunSummary,
    load_config,
    load_handlers,
)
from indexer.persist import table_ident
from indexer.sources import RawLog
from indexer.store import entity_spec
from indexer.testing import (
    HandlerHarness,
    LogSpec,
    RpcServer,
    ScriptedChain,
    encode_log,
    make_event,
    make_log,
    open_handler_harness,
    read_entities,
    run_scripted,
)

from ._chains import (
    HOLDERS,
    TOKENS,
    TRANSFER,
    expected,
    make_rpc_project,
    random_logs,
    replace_logs,
    scripted_chain,
)

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

TRANSFER_SIG = "event Transfer(address indexed from, address indexed to, uint256 value)"
ZERO = "0x" + "00" * 20


def word(value: Any, typ: str = "address") -> str:
    return "0x" + abi_encode([typ], [value]).hex()


# --------------------------------------------------------------------------
# Building logs and events
# --------------------------------------------------------------------------


def test_encode_log_puts_indexed_values_in_topics_and_the_rest_in_data() -> None:
    sender, receiver = "0x" + "Ab" * 20, "0x" + "cd" * 20
    log = encode_log(
        TRANSFER_SIG, {"from": sender, "to": receiver, "value": 10**30}, address=TOKENS[0]
    )
    assert log.address == TOKENS[0]
    assert log.topics == (TRANSFER, word(sender.lower()), word(receiver))
    assert log.data == "0x" + abi_encode(["uint256"], [10**30]).hex()


def test_make_event_gives_what_the_decoder_gives() -> None:
    sig = (
        "event Mixed(int16 indexed delta, string indexed label, (uint8,address) indexed pair,"
        " address who, bool flag, bytes4 tag, bytes blob, string note, uint64[] amounts,"
        " (address owner, int8[2] steps) point)"
    )
    pair_hash = bytes(keccak(b"a pair"))
    who = "0x" + "EF" * 20
    event = make_event(
        sig,
        {
            "delta": -300,
            "label": "hello",
            "pair": pair_hash,
            "who": who,
            "flag": True,
            "tag": b"\x01\x02\x03\x04",
            "blob": b"\xff" * 40,
            "note": "héllo",
            "amounts": (1, 2, 2**64 - 1),
            "point": (who, [-1, 127]),
        },
        contract="Thing",
        address=TOKENS[1],
        block_number=7,
        log_index=3,
        chain_id=5,
        block_timestamp=1_700_000_084,
    )
    assert event.params == {
        "delta": -300,
        # Indexed dynamic values are their keccak256, as on chain.
        "label": bytes(keccak(b"hello")),
        "pair": pair_hash,
        "who": who.lower(),
        "flag": True,
        "tag": b"\x01\x02\x03\x04",
        "blob": b"\xff" * 40,
        "note": "héllo",
        "amounts": [1, 2, 2**64 - 1],
        "point": (who.lower(), [-1, 127]),
    }
    assert (event.contract, event.name, event.address) == ("Thing", "Mixed", TOKENS[1])
    assert (event.chain_id, event.block_number, event.log_index) == (5, 7, 3)
    assert event.block_timestamp == 1_700_000_084
    assert event.block_hash is None
    # The transaction hash is made up from the position: the same position, the same hash.
    again = make_log("event Other()", {}, address=ZERO, block_number=7, log_index=3)
    assert event.transaction_hash == again.transaction_hash
    assert len(event.transaction_hash) == 66


def test_anonymous_events_and_unnamed_inputs() -> None:
    log = encode_log(
        "event Ping(uint256 indexed, uint256) anonymous", {"arg0": 1, "arg1": 2}, address=ZERO
    )
    assert log.topics == (word(1, "uint256"),)  # no topic0
    event = make_event(
        "event Ping(uint256 indexed, uint256) anonymous",
        {"arg0": 1, "arg1": 2},
        contract="C",
        address=ZERO,
        block_number=1,
    )
    assert event.params == {"arg0": 1, "arg1": 2}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": ZERO, "to": ZERO}, "missing ['value']"),
        ({"from": ZERO, "to": ZERO, "value": 1, "amount": 2}, "unknown ['amount']"),
        ({"from": ZERO, "to": ZERO, "value": -1}, "parameter 'value' (uint256)"),
        ({"from": "0x12", "to": ZERO, "value": 1}, "parameter 'from' (address)"),
    ],
)
def test_bad_parameters_are_named(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="Transfer") as info:
        encode_log(TRANSFER_SIG, params, address=TOKENS[0])
    assert message in str(info.value)


def test_an_indexed_array_needs_its_hash() -> None:
    with pytest.raises(ValueError, match=r"'ids' \(uint256\[\]\).*32-byte keccak256"):
        encode_log("event E(uint256[] indexed ids)", {"ids": [1, 2]}, address=ZERO)


def test_bad_hashes_and_addresses_are_refused() -> None:
    with pytest.raises(ValueError, match="block hash"):
        make_log(
            TRANSFER_SIG,
            {"from": ZERO, "to": ZERO, "value": 1},
            address=ZERO,
            block_number=1,
            block_hash="0x12",
        )
    with pytest.raises(ValueError, match="address"):
        encode_log(TRANSFER_SIG, {"from": ZERO, "to": ZERO, "value": 1}, address="0xnope")


# --------------------------------------------------------------------------
# The harness, in memory
# --------------------------------------------------------------------------


def raw_logs(chain: ScriptedChain) -> list[RawLog]:
    """The chain's canonical logs as a source delivers them."""
    return [
        RawLog(
            int(lg["blockNumber"], 16),
            int(lg["logIndex"], 16),
            lg["transactionHash"],
            lg["address"],
            tuple(lg["topics"]),
            lg["data"],
            lg["blockHash"],
            int(lg["blockTimestamp"], 16),
        )
        for lg in chain.logs(0, chain.head)
    ]


def as_rows(harness_or_rows: Any, module: ModuleType) -> tuple[dict[str, Any], dict[str, Any]]:
    """(accounts, tokens) in the shape of ``_chains.expected``."""
    if isinstance(harness_or_rows, HandlerHarness):
        accounts = harness_or_rows.all(module.Account)
        tokens = harness_or_rows.all(module.Token)
    else:
        accounts, tokens = harness_or_rows
    return (
        {k: (a.balance, a.transfers) for k, a in accounts.items()},
        {k: (t.holders, t.last_block) for k, t in tokens.items()},
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The reorg tests' project: Account (with deletes and an Index) and Token (from ctx.find)."""
    return make_rpc_project(tmp_path, "kit", "http://unused.invalid/", end_block=None)


@pytest.fixture
def module(project: Path) -> ModuleType:
    return load_handlers(load_config(project)).module


async def test_memory_harness_matches_the_oracle(project: Path, module: ModuleType) -> None:
    chain, _rng = scripted_chain(11, head=40)
    logs = raw_logs(chain)
    harness = HandlerHarness(project, handlers=module)
    # In three sends, to carry state from one batch to the next.
    await harness.send(*logs[:10])
    await harness.send(*logs[10:25])
    await harness.send(*logs[25:])
    assert as_rows(harness, module) == expected(chain)
    assert harness.events == len(logs)
    # Nothing reads a database: every miss is an absent entity, find answers from memory.
    some = next(iter(harness.all(module.Account)))
    assert harness.get(module.Account, some) == harness.all(module.Account)[some]
    assert harness.get(module.Account, "nobody") is None


async def test_a_long_range_gives_the_loops_other_tasks_turns(
    project: Path, module: ModuleType
) -> None:
    """Handlers that never wait (all in memory) still let other tasks run between blocks.

    Under ``run --serve`` the API's requests are tasks on the same loop: a range
    of thousands of events must not keep them waiting until its end.
    """
    chain, _rng = scripted_chain(17, head=2000)
    logs = raw_logs(chain)
    assert len(logs) > 2_000
    harness = HandlerHarness(project, handlers=module)
    turns = 0
    done = False

    async def other_task() -> None:
        nonlocal turns
        while not done:
            await trio.lowlevel.checkpoint()
            turns += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        await trio.lowlevel.checkpoint()  # it has started
        before = turns
        await harness.send(*logs)  # one range: one process() call
        during = turns - before
        done = True
    # A turn about every 100 events (at the next block boundary).
    assert during >= len(logs) // 200
    assert as_rows(harness, module) == expected(chain)


async def test_events_and_raw_logs_give_the_same_result(project: Path, module: ModuleType) -> None:
    chain, _rng = scripted_chain(12, head=25)
    logs = raw_logs(chain)
    by_logs = HandlerHarness(project, handlers=module)
    await by_logs.send(*logs)
    by_events = HandlerHarness(project, handlers=module)
    events = []
    for lg in logs:
        sender, receiver = ("0x" + t[-40:] for t in lg.topics[1:3])
        events.append(
            by_events.event(
                "Token",
                "Transfer",
                {"from": sender, "to": receiver, "value": int(lg.data, 16)},
                address=lg.address,
                block_number=lg.block_number,
                log_index=lg.log_index,
            )
        )
    await by_events.send(*events)
    assert as_rows(by_events, module) == as_rows(by_logs, module) == expected(chain)


async def test_raw_logs_are_routed_and_decoded_as_in_a_run(
    project: Path, module: ModuleType
) -> None:
    harness = HandlerHarness(project, handlers=module)
    sender, receiver = HOLDERS[:2]
    transfer = {"from": sender, "to": receiver, "value": 5}
    # The same topic0 with a fourth topic (an ERC721 Transfer): skipped by the wildcard contract.
    nft = "event Transfer(address indexed from, address indexed to, uint256 indexed value)"
    # An event the project does not declare: no route, ignored.
    other = "event Approval(address indexed owner, address indexed spender, uint256 value)"
    await harness.send(
        make_log(nft, transfer, address=TOKENS[0], block_number=1),
        make_log(
            other,
            {"owner": sender, "spender": receiver, "value": 1},
            address=TOKENS[0],
            block_number=1,
        ),
        harness.log("Token", "Transfer", transfer, address=TOKENS[0], block_number=2),
    )
    assert harness.skipped == {"Token.Transfer": 1}
    assert harness.events == 1
    assert harness.get(module.Account, f"{TOKENS[0]}-{receiver}") == module.Account(
        id=f"{TOKENS[0]}-{receiver}", token=TOKENS[0], balance=5, transfers=1
    )
    assert harness.get(module.Token, TOKENS[0]) == module.Token(
        id=TOKENS[0], holders=2, last_block=2
    )


async def test_explicit_addresses_decode_strictly(tmp_path: Path) -> None:
    project = make_rpc_project(tmp_path, "kit", "http://unused.invalid/", end_block=None)
    yaml = project / "indexer.yaml"
    yaml.write_text(
        yaml.read_text().replace(
            "      - name: Token\n", f"      - name: Token\n        addresses: ['{TOKENS[0]}']\n"
        )
    )
    harness = HandlerHarness(project)
    account = harness.handlers.module.Account
    # The only address is the default; another one is refused (its logs would not route).
    event = harness.event(
        "Token", "Transfer", {"from": ZERO, "to": HOLDERS[0], "value": 3}, block_number=1
    )
    assert event.address == TOKENS[0]
    with pytest.raises(ValueError, match="not an address of contract 'Token'"):
        harness.log(
            "Token",
            "Transfer",
            {"from": ZERO, "to": ZERO, "value": 3},
            block_number=1,
            address=TOKENS[1],
        )
    await harness.send(event)
    assert harness.get(account, f"{TOKENS[0]}-{HOLDERS[0]}") is not None
    nft = "event Transfer(address indexed from, address indexed to, uint256 indexed value)"
    with pytest.raises(DecodeError, match=r"does not decode as Token\.Transfer"):
        await harness.send(
            make_log(nft, {"from": ZERO, "to": ZERO, "value": 1}, address=TOKENS[0], block_number=2)
        )


async def test_misuse_is_reported(project: Path, module: ModuleType) -> None:
    harness = HandlerHarness(project, handlers=module)
    transfer = {"from": HOLDERS[0], "to": HOLDERS[1], "value": 1}
    with pytest.raises(ValueError, match="pass address="):
        harness.event("Token", "Transfer", transfer, block_number=1)
    with pytest.raises(ValueError, match="no contract 'ERC20'"):
        harness.event("ERC20", "Transfer", transfer, block_number=1, address=TOKENS[0])
    with pytest.raises(ValueError, match="no event 'Approval'"):
        harness.event("Token", "Approval", transfer, block_number=1, address=TOKENS[0])
    unhandled = make_event(
        TRANSFER_SIG, transfer, contract="Other", address=TOKENS[0], block_number=1
    )
    with pytest.raises(
        ValueError, match=r"no handler is registered .*handled: \['Token.Transfer'\]"
    ):
        await harness.send(unhandled)
    elsewhere = make_event(
        TRANSFER_SIG, transfer, contract="Token", address=TOKENS[0], block_number=1, chain_id=9
    )
    with pytest.raises(ValueError, match="chain 9"):
        await harness.send(elsewhere)
    late = harness.event("Token", "Transfer", transfer, block_number=5, address=TOKENS[0])
    early = harness.event("Token", "Transfer", transfer, block_number=4, address=TOKENS[0])
    with pytest.raises(ValueError, match="block 4 comes after block 5"):
        await harness.send(late, early)
    await harness.send(late)
    with pytest.raises(ValueError, match="block 4 comes after block 5"):
        await harness.send(early)
    # An entity class from another import of the handlers file is not the harness's.
    other_import = load_handlers(load_config(project)).module
    with pytest.raises(TypeError, match="imported twice"):
        harness.get(other_import.Account, "x")
    assert harness.get(module.Account, f"{TOKENS[0]}-{HOLDERS[1]}") is not None


async def test_a_failing_handler_stops_the_harness(tmp_path: Path) -> None:
    project = make_rpc_project(tmp_path, "kit", "http://unused.invalid/", end_block=None)
    handlers = project / "handlers.py"
    handlers.write_text(
        handlers.read_text().replace(
            '    value = event.params["value"]\n',
            '    value = event.params["value"]\n    assert value != 13, "unlucky"\n',
        )
    )
    harness = HandlerHarness(project)
    good = harness.event(
        "Token",
        "Transfer",
        {"from": ZERO, "to": HOLDERS[0], "value": 1},
        address=TOKENS[0],
        block_number=1,
    )
    bad = harness.event(
        "Token",
        "Transfer",
        {"from": ZERO, "to": HOLDERS[0], "value": 13},
        address=TOKENS[0],
        block_number=2,
    )
    await harness.send(good)
    with pytest.raises(HandlerError, match=r"failed on Token.Transfer at chain 1 block 2.*unlucky"):
        await harness.send(bad)
    with pytest.raises(RuntimeError, match="an earlier send failed"):
        await harness.send(good)


# --------------------------------------------------------------------------
# The harness with PostgreSQL
# --------------------------------------------------------------------------


async def test_database_harness_commits_loads_and_resumes(
    project: Path, module: ModuleType, database_url: str, schema: str
) -> None:
    chain, _rng = scripted_chain(13, head=40)
    logs = raw_logs(chain)
    # Cut at a block boundary, so that the oracle up to that block matches.
    cut = next(
        i
        for i in range(len(logs) // 2, len(logs))
        if logs[i].block_number != logs[i - 1].block_number
    )
    async with open_handler_harness(
        project, handlers=module, database_url=database_url, schema=schema
    ) as harness:
        await harness.send(*logs[:10])
        # Cold memory: the next handlers load what they touch from PostgreSQL.
        assert harness.evict() > 0
        assert harness.store.size() == 0
        await harness.send(*logs[10:cut])
        # get/all read the database, which holds every send.
        assert as_rows(harness, module) == expected(chain, logs[cut - 1].block_number)
    # Another harness on the same schema resumes from the database.
    async with open_handler_harness(
        project, handlers=module, database_url=database_url, schema=schema
    ) as harness:
        await harness.send(*logs[cut:])
        assert as_rows(harness, module) == expected(chain)
        first = next(iter(harness.all(module.Account)))
        assert harness.get(module.Account, first) == harness.all(module.Account)[first]
        assert harness.get(module.Account, "nobody") is None
    tables = (
        read_entities(database_url, schema, module.Account),
        read_entities(database_url, schema, module.Token),
    )
    assert as_rows(tables, module) == expected(chain)
    # reset starts from an empty schema.
    async with open_handler_harness(
        project, handlers=module, database_url=database_url, schema=schema, reset=True
    ) as harness:
        assert harness.all(module.Account) == {}
    with pytest.raises(RuntimeError, match="needs a database"):
        HandlerHarness(project, handlers=module).evict()


async def test_a_failed_load_is_a_database_error_naming_the_event(
    project: Path, module: ModuleType, database_url: str, schema: str
) -> None:
    """persist classifies a load's psycopg error; the processor adds the event it was for."""
    chain, _rng = scripted_chain(13, head=40)
    logs = raw_logs(chain)
    async with open_handler_harness(
        project, handlers=module, database_url=database_url, schema=schema
    ) as harness:
        await harness.send(*logs[:10])
    # A new harness finds rows in the tables, so every miss is a query; the tables are gone.
    async with open_handler_harness(
        project, handlers=module, database_url=database_url, schema=schema
    ) as harness:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for entity in (module.Account, module.Token):
                table = table_ident(schema, entity_spec(entity).table)
                conn.execute(sql.SQL("DROP TABLE {}").format(table))
        with pytest.raises(DatabaseError) as info:
            await harness.send(*logs[10:])
    assert re.fullmatch(
        r"loading entities for chain 1 block \d+ log index \d+ failed: UndefinedTable: "
        r".+ Nothing of this batch was committed; `indexer run` resumes from the last "
        r"committed block\.",
        str(info.value),
        flags=re.DOTALL,
    ), str(info.value)
    # persist's DatabaseError, then psycopg's own.
    assert type(info.value.__cause__) is DatabaseError
    assert isinstance(info.value.__cause__.__cause__, psycopg.errors.UndefinedTable)


# --------------------------------------------------------------------------
# Whole runs against a scripted chain
# --------------------------------------------------------------------------


def db_rows(url: str, schema: str, module: ModuleType) -> tuple[dict[str, Any], dict[str, Any]]:
    tables = (read_entities(url, schema, module.Account), read_entities(url, schema, module.Token))
    return as_rows(tables, module)


async def test_run_scripted_rolls_back_a_reorg_between_runs(
    project: Path, module: ModuleType, database_url: str, schema: str
) -> None:
    chain, rng = scripted_chain(14, head=30)
    first = await run_scripted(project, chain, database_url=database_url, schema=schema)
    assert first.chains[1][0] == 30
    assert first.rollbacks == []
    assert db_rows(database_url, schema, module) == expected(chain)
    chain.reorg(4, replace_logs(rng, chain, 4))
    chain.advance(3, random_logs(rng, range(31, 34)))
    second = await run_scripted(project, chain, database_url=database_url, schema=schema)
    assert [(c, b) for c, b, _rows, _s in second.rollbacks] == [(1, 26)]
    assert second.chains[1][0] == 33
    assert db_rows(database_url, schema, module) == expected(chain)


class Committed:
    """A run's reporter: lets the test wait until the run has committed a block.

    No ``trio.fail_after`` around the wait: under the autojump clock, virtual
    time runs on while PostgreSQL works in a thread, and a timeout would fire.
    """

    def __init__(self) -> None:
        self.block = -1
        self._changed = trio.Event()

    def __call__(self, status: RunStatus) -> None:
        if status.chains[0].committed_block != self.block:
            self.block = status.chains[0].committed_block
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, block: int) -> None:
        while self.block < block:
            await self._changed.wait()


async def test_run_scripted_follows_a_growing_chain_under_the_mock_clock(
    autojump_clock: trio.testing.MockClock,
    project: Path,
    module: ModuleType,
    database_url: str,
    schema: str,
) -> None:
    """A block every 12 virtual seconds, reorgs of the committed tip, failing calls: no real waiting."""
    chain, rng = scripted_chain(15, head=10)
    server = RpcServer(chain)
    server.fail("eth_getLogs", times=2, kind="http_503")
    committed = Committed()
    options = RunOptions(write_interval=0.0, reporter=committed, report_interval=1.0)
    started = trio.current_time()
    summaries: list[RunSummary] = []

    async def indexer() -> None:
        summaries.append(
            await run_scripted(
                project,
                server,
                database_url=database_url,
                schema=schema,
                end_block=40,
                poll_interval=4.0,
                options=options,
            )
        )

    def new_logs(number: int) -> list[LogSpec]:
        return random_logs(rng, [number])[number]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(indexer)
        for depth in (3, 5):
            await committed.wait_for(chain.head)
            chain.reorg(depth, replace_logs(rng, chain, depth))
            await server.produce_blocks(interval=12.0, until=chain.head + 6, logs=new_logs)
        await server.produce_blocks(interval=12.0, until=40, logs=new_logs)
    (summary,) = summaries
    assert trio.current_time() - started >= 30 * 12  # virtual seconds: blocks 11..40
    assert summary.chains[1][0] == 40
    assert db_rows(database_url, schema, module) == expected(chain)
    # Each reorg replaced the committed tip: rolled back to just below the replaced blocks.
    assert [(c, b) for c, b, _rows, _s in summary.rollbacks] == [(1, 7), (1, 11)]
    assert server.calls["eth_getLogs"] > 2


async def test_run_scripted_needs_the_chain_in_the_project(
    project: Path, database_url: str, schema: str
) -> None:
    with pytest.raises(ValueError, match=r"no chain 7 \(its chains: \[1\]\)"):
        await run_scripted(
            project, ScriptedChain(7, head=3), database_url=database_url, schema=schema
        )


def test_harness_outside_trio_with_trio_run(project: Path, module: ModuleType) -> None:
    """Synchronous tests (hypothesis state machines) drive a memory harness with trio.run."""
    harness = HandlerHarness(project, handlers=module)
    rng = random.Random(3)
    total = 0
    for block in range(1, 6):
        value = rng.randint(1, 9)
        total += value
        event = harness.event(
            "Token",
            "Transfer",
            {"from": ZERO, "to": HOLDERS[0], "value": value},
            address=TOKENS[0],
            block_number=block,
        )
        trio.run(harness.send, event)
    account = harness.get(module.Account, f"{TOKENS[0]}-{HOLDERS[0]}")
    assert account is not None
    assert (account.balance, account.transfers) == (total, 5)
