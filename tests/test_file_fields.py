"""Transaction and block fields, and block handlers, on file chains: cryo transactions/blocks parquet.

The reference is the ethereum-etl CSVs the fixture files were built from
(examples/polygon_senders/data/source/, real Polygon blocks 52395713 and
52395714): every value a handler stored is compared with the CSV's own,
read here independently of the reader.  Synthetic files cover what the
real ones cannot: blocks without logs, many row groups, rows of another
fork, missing rows.
"""

from __future__ import annotations

import csv
import gzip
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexer import ConfigError, RunOptions, SourceError, load_handlers, run_project
from indexer.config import load_config
from indexer.sources._cryo_tables import CryoTable, python_values
from indexer.testing import read_entities

from ._projects import raised

if TYPE_CHECKING:
    from types import ModuleType

DATA = Path(__file__).resolve().parent.parent / "examples" / "polygon_senders" / "data"
PREFIX = "polygon_52395713_52395714"
LOGS = DATA / f"{PREFIX}_logs.cryo.parquet"
TXS = DATA / f"{PREFIX}_transactions.cryo.parquet"
BLOCKS = DATA / f"{PREFIX}_blocks.cryo.parquet"
FIRST, SECOND = 52395713, 52395714
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

# Every transaction key the fixture has a column for (value and gas are not
# exact in the CSVs, and cryo has no effective_gas_price: see data/README.md).
TX_KEYS = [
    "from", "to", "gas_price", "max_fee_per_gas", "max_priority_fee_per_gas", "input", "nonce",
    "transaction_index", "type", "status", "gas_used",
]  # fmt: skip

HANDLERS = """
from indexer import Block, Context, Entity, Event, on, on_block

TX_KEYS = {tx_keys!r}


class Record(Entity):
    id: str
    tx_hash: str
    tx: str
    block: str


class Snapshot(Entity):
    id: str
    block: str
    transfers: int
    runs: int = 0


class Count(Entity):
    id: str
    transfers: int = 0


def attr(key):
    return "from_" if key == "from" else key


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    values = [(k, getattr(event.transaction, attr(k))) for k in TX_KEYS]
    b = event.block
    block = [b.number, b.hash] + ([b.parent_hash, b.timestamp] if {blocks!r} else [])
    ctx.set(Record(f"{{event.block_number}}-{{event.log_index}}", event.transaction_hash,
                   repr(values), repr(block)))
    count = await ctx.get(Count, "all") or Count("all")
    ctx.set(count.replace(transfers=count.transfers + 1))
"""

BLOCK_HANDLER = """

@on_block(chain=137, every={every}, start={start})
async def snapshot(block: Block, ctx: Context) -> None:
    count = await ctx.get(Count, "all") or Count("all")
    old = await ctx.get(Snapshot, str(block.number))
    fields = repr([block.number, block.hash, block.parent_hash, block.timestamp])
    ctx.set(Snapshot(str(block.number), fields, count.transfers, 1 if old is None else old.runs + 1))
"""


def make_project(
    tmp: Path,
    schema: str,
    *,
    start: int = FIRST,
    end: int | None = SECOND,
    tx_keys: list[str] | None = None,
    block_keys: list[str] | None = None,
    handler: tuple[int, int] | None = None,
    logs: Path = LOGS,
    blocks: Path | None = BLOCKS,
    transactions: Path | None = TXS,
) -> Path:
    project = tmp / "project"
    project.mkdir(exist_ok=True)
    text = HANDLERS.format(tx_keys=tx_keys or [], blocks=bool(block_keys))
    if handler is not None:
        text += BLOCK_HANDLER.format(every=handler[0], start=handler[1])
    (project / "handlers.py").write_text(text)
    source = {"file": str(logs)}
    if blocks is not None:
        source["blocks"] = str(blocks)
    if transactions is not None:
        source["transactions"] = str(transactions)
    selection = {"transaction": tx_keys or [], "block": block_keys or []}
    (project / "indexer.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: file-fields
            schema: {schema}
            handlers: handlers.py
            chains:
              - id: 137
                start_block: {start}
                end_block: {"null" if end is None else end}
                source: {source}
                contracts:
                  - name: Token
                    events: ["event Transfer(address indexed from, address indexed to, uint256 value)"]
                    field_selection: {selection}
            """
        )
    )
    return project


async def run(project: Path, url: str, **options: Any) -> ModuleType:
    config = load_config(project)
    handlers = load_handlers(config)
    await run_project(
        config, handlers, RunOptions(database_url=url, handle_signals=False, **options)
    )
    return handlers.module


def _csv(kind: str) -> list[dict[str, str]]:
    path = DATA / "source" / f"{PREFIX}_{kind}.ethereumetl.csv.gz"
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.DictReader(f))


def _opt(text: str) -> int | None:
    return None if text == "" else int(text)


def expected_transactions() -> dict[str, list[tuple[str, Any]]]:
    """Each transaction's selected values, straight from the ethereum-etl CSVs."""
    receipts = {r["transaction_hash"]: r for r in _csv("receipts")}
    out = {}
    for t in _csv("transactions"):
        r = receipts[t["hash"]]
        values = {
            "from": t["from_address"].lower(),
            "to": t["to_address"].lower() or None,
            "gas_price": _opt(t["gas_price"]),
            "max_fee_per_gas": _opt(t["max_fee_per_gas"]),
            "max_priority_fee_per_gas": _opt(t["max_priority_fee_per_gas"]),
            "input": t["input"].lower(),
            "nonce": int(t["nonce"]),
            "transaction_index": int(t["transaction_index"]),
            "type": int(t["transaction_type"]),
            "status": int(r["status"]),
            "gas_used": int(r["gas_used"]),
        }
        out[t["hash"]] = [(k, values[k]) for k in TX_KEYS]
    return out


def expected_blocks() -> dict[int, list[Any]]:
    """number -> [number, hash, parent hash, timestamp]; 52395713's parent is in no CSV."""
    seen = {int(t["block_number"]): (t["block_hash"], int(t["block_timestamp"])) for t in _csv("transactions")}  # fmt: skip
    return {SECOND: [SECOND, seen[SECOND][0], seen[FIRST][0], seen[SECOND][1]]}


def transfer_logs(blocks: set[int]) -> dict[str, str]:
    """``"<block>-<log index>"`` -> transaction hash of every ERC20-shaped Transfer in ``blocks``."""
    out = {}
    for lg in _csv("logs"):
        topics = lg["topics"].split(",")
        if int(lg["block_number"]) in blocks and topics[0] == TRANSFER and len(topics) == 3:
            out[f"{lg['block_number']}-{lg['log_index']}"] = lg["transaction_hash"]
    return out


# ----------------------------------------------------------------------------- real data


async def test_every_selected_transaction_field_equals_the_csv(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema, tx_keys=TX_KEYS, blocks=None)
    module = await run(project, database_url, chunk_logs=50)
    records = read_entities(database_url, schema, module.Record)
    want = expected_transactions()
    logs = transfer_logs({FIRST, SECOND})
    assert set(records) == set(logs)
    assert len(records) > 100  # both blocks, many chunks of 50
    for key, record in records.items():
        assert record.tx_hash == logs[key]
        assert record.tx == repr(want[record.tx_hash]), key
        # Nothing selected of the block: the log's own number and hash.
        number = int(key.split("-")[0])
        assert eval(record.block)[0] == number
    # The CSV has failed transactions and contract calls of both types; all got through.
    statuses = {dict(want[r.tx_hash])["status"] for r in records.values()}
    types = {dict(want[r.tx_hash])["type"] for r in records.values()}
    assert types == {0, 2}
    assert 1 in statuses


async def test_block_fields_and_a_block_handler_equal_the_csv(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(
        tmp_path,
        schema,
        start=SECOND,
        tx_keys=["from"],
        block_keys=["timestamp", "parent_hash"],
        handler=(1, SECOND),
    )
    module = await run(project, database_url)
    want = expected_blocks()
    records = read_entities(database_url, schema, module.Record)
    assert set(records) == set(transfer_logs({SECOND}))
    for record in records.values():
        assert eval(record.block) == want[SECOND]
    snapshots = read_entities(database_url, schema, module.Snapshot)
    # After the block's log handlers: it counts all of them.
    assert {k: (eval(s.block), s.transfers, s.runs) for k, s in snapshots.items()} == {
        str(SECOND): (want[SECOND], len(records), 1)
    }
    # A restart runs nothing again.
    await run(project, database_url)
    assert read_entities(database_url, schema, module.Snapshot)[str(SECOND)].runs == 1


async def test_a_block_without_its_parent_hash_is_an_error_naming_the_block(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    # The fixture's first block has no parent_hash (it is in no CSV).
    project = make_project(tmp_path, schema, handler=(1, FIRST))
    with raised(SourceError, match=rf"block {FIRST} has no parent_hash \(null\)"):
        await run(project, database_url)


# ----------------------------------------------------------------------------- synthetic files


def _hash(tag: str, n: int) -> bytes:
    return bytes.fromhex(f"{tag}{n:062x}")


def write_chain(
    tmp: Path, numbers: range, log_blocks: list[int], *, group: int = 4
) -> tuple[Path, Path, Path]:
    """A cryo-shaped logs file with one Transfer per block of ``log_blocks``, and its txs and blocks."""
    topic = bytes.fromhex(TRANSFER[2:])
    holder = bytes(12) + bytes.fromhex("aa" * 20)
    logs = {
        "block_number": pa.array(log_blocks, pa.uint32()),
        "block_hash": [_hash("b0", n) for n in log_blocks],
        "transaction_index": pa.array([0] * len(log_blocks), pa.uint32()),
        "log_index": pa.array([0] * len(log_blocks), pa.uint32()),
        "transaction_hash": [_hash("70", n) for n in log_blocks],
        "address": [bytes.fromhex("cc" * 20)] * len(log_blocks),
        "topic0": [topic] * len(log_blocks),
        "topic1": [holder] * len(log_blocks),
        "topic2": [holder] * len(log_blocks),
        "topic3": pa.array([None] * len(log_blocks), pa.binary()),
        "data": [(5).to_bytes(32, "big")] * len(log_blocks),
    }
    txs = {
        "block_number": pa.array(log_blocks, pa.uint32()),
        "transaction_hash": [_hash("70", n) for n in log_blocks],
        "from_address": [bytes.fromhex(f"{n:040x}") for n in log_blocks],
        "value_binary": [(n * 10**18).to_bytes(32, "big") for n in log_blocks],
        "value_string": [str(n * 10**18) for n in log_blocks],
        "block_hash": [_hash("b0", n) for n in log_blocks],
    }
    blocks = {
        "block_number": pa.array(list(numbers), pa.uint32()),
        "block_hash": [_hash("b0", n) for n in numbers],
        "parent_hash": [_hash("b0", n - 1) for n in numbers],
        "timestamp": pa.array([1_700_000_000 + 2 * n for n in numbers], pa.uint32()),
        "author": [bytes.fromhex("ee" * 20)] * len(numbers),
    }
    paths = tmp / "logs.parquet", tmp / "txs.parquet", tmp / "blocks.parquet"
    for path, columns in zip(paths, (logs, txs, blocks), strict=True):
        pq.write_table(pa.table(columns), path, row_group_size=group)
    return paths


def synthetic_project(
    tmp: Path, schema: str, numbers: range, log_blocks: list[int], **kwargs: Any
) -> Path:
    logs, txs, blocks = write_chain(tmp, numbers, log_blocks)
    return make_project(
        tmp, schema, logs=logs, transactions=txs, blocks=blocks, **{"start": numbers[0], **kwargs}
    )


@pytest.mark.parametrize("end", [130, None])
async def test_block_handlers_run_between_and_after_the_logs(
    tmp_path: Path, database_url: str, schema: str, end: int | None
) -> None:
    # Logs in 2 blocks of 100..130; a handler every 3 blocks from 101, small chunks.
    project = synthetic_project(
        tmp_path, schema, range(100, 131), [105, 112], end=end, handler=(3, 101)
    )
    module = await run(project, database_url, chunk_logs=1)
    snapshots = read_entities(database_url, schema, module.Snapshot)
    # Without end_block, handlers run to the blocks file's last block.
    due = range(101, 131, 3)
    assert sorted(int(k) for k in snapshots) == list(due)
    for n in due:
        s = snapshots[str(n)]
        parent, own = "0x" + _hash("b0", n - 1).hex(), "0x" + _hash("b0", n).hex()
        assert eval(s.block) == [n, own, parent, 1_700_000_000 + 2 * n]
        assert (s.transfers, s.runs) == ((n >= 105) + (n >= 112), 1)


async def test_value_from_cryo_u256_columns(tmp_path: Path, database_url: str, schema: str) -> None:
    project = synthetic_project(
        tmp_path, schema, range(100, 110), [103, 107], tx_keys=["from", "value"]
    )
    module = await run(project, database_url)
    records = read_entities(database_url, schema, module.Record)
    assert {k: eval(r.tx) for k, r in records.items()} == {
        f"{n}-0": [("from", f"0x{n:040x}"), ("value", n * 10**18)] for n in (103, 107)
    }


def _rewrite(path: Path, change: Any) -> None:
    table = pq.read_table(path)
    pq.write_table(change(table), path)


async def test_a_transaction_of_another_fork_is_refused(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = synthetic_project(tmp_path, schema, range(100, 110), [103, 107], tx_keys=["from"])

    def other_fork(table: pa.Table) -> pa.Table:
        hashes = table.column("block_hash").to_pylist()
        hashes[1] = _hash("f0", 107)
        return table.set_column(table.schema.get_field_index("block_hash"), "block_hash", [hashes])

    _rewrite(tmp_path / "txs.parquet", other_fork)
    with raised(
        SourceError, match=r"transaction 0x70\w+ is in block 107 \(0xf0\w+\), but its logs"
    ):
        await run(project, database_url)


async def test_a_missing_transaction_or_block_is_refused(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = synthetic_project(tmp_path, schema, range(100, 110), [103, 107], tx_keys=["from"])
    _rewrite(tmp_path / "txs.parquet", lambda t: t.slice(0, 1))
    with raised(SourceError, match=r"txs\.parquet lacks transaction 0x70\w+ \(block 107\)"):
        await run(project, database_url)
    project = synthetic_project(tmp_path, schema, range(100, 110), [103, 107], block_keys=["miner"])
    _rewrite(
        tmp_path / "blocks.parquet",
        lambda t: t.filter(pa.compute.not_equal(t["block_number"], 107)),
    )
    with raised(SourceError, match=r"blocks\.parquet lacks block 107"):
        await run(project, database_url)


# ----------------------------------------------------------------------------- config


def _load_error(project: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_handlers(load_config(project))
    return str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"tx_keys": ["from", "value"]},
            "field_selection.transaction: `value` needs the column one of 'value_binary', "
            "'value_string', 'value', which",
        ),
        ({"tx_keys": ["effective_gas_price"]}, "`effective_gas_price` needs the column"),
        ({"tx_keys": ["gas"]}, "`gas` needs the column 'gas_limit'"),
        ({"block_keys": ["miner"]}, "field_selection.block: `miner` needs the column 'author'"),
        (
            {"tx_keys": ["from"], "transactions": None},
            "field_selection.transaction: `from` needs transactions, which the file source",
        ),
        (
            {"block_keys": ["timestamp"], "blocks": None},
            "field_selection.block: `timestamp` needs blocks",
        ),
        (
            {"handler": (1, FIRST), "blocks": None},
            "block handler snapshot (@on_block(chain=137)): chain 137's source is a file "
            f"({LOGS.name}) without blocks: add `blocks: <cryo blocks .parquet>`",
        ),
        (
            {"blocks": DATA / "nope.parquet"},
            "chains[0].source.blocks: ",
        ),
        (
            {"transactions": BLOCKS},
            f"chains[0].source.transactions: {BLOCKS} lacks the column(s) transaction_hash",
        ),
    ],
)
def test_what_the_files_cannot_give_is_a_config_error(
    tmp_path: Path, kwargs: dict[str, Any], expected: str
) -> None:
    message = _load_error(make_project(tmp_path, "x", **kwargs))
    assert expected in message


def test_a_blocks_file_without_parent_hash_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "blocks.parquet"
    pq.write_table(pq.read_table(BLOCKS).drop_columns(["parent_hash"]), path)
    message = _load_error(make_project(tmp_path, "x", blocks=path))
    assert "chains[0].source.blocks: " in message
    assert "lacks the column(s) parent_hash" in message
    assert "--include-columns parent_hash" in message


def test_a_table_reads_only_the_row_groups_of_the_range(tmp_path: Path) -> None:
    """Memory stays at the row groups of the asked blocks: others are skipped, passed ones dropped."""
    _logs, _txs, blocks = write_chain(tmp_path, range(100, 140), [100], group=4)
    table = CryoTable(blocks, "blocks", ["block_hash"])
    rows = table.rows(110, 111, "block_number", [110, 111])
    assert rows.column("block_number").to_pylist() == [110, 111]
    assert python_values(rows, "block_hash", "hex", blocks)[0] == "0x" + _hash("b0", 110).hex()
    assert sorted(table._loaded) == [2]  # rows (blocks) 108..111 only
    assert table.rows(121, 126, "block_number", [121, 126]).num_rows == 2
    assert sorted(table._loaded) == [5, 6]  # group 2 is behind: dropped
    assert table.last_block() == 139
