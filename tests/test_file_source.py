"""Tests for the file source (`indexer.sources._file`, `_jsonl`, `_parquet`): reading logs from JSON lines and parquet files."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexer import ConfigError, SourceError
from indexer.sources import (
    FileReadStats,
    LogFilter,
    RawLog,
    _jsonl,
    last_block_in_file,
    read_log_file,
)

_GZ_NAME = "ethereum_mainnet_all_logs_18426253_18426303.getlogs.jsonl.gz"
_PQ_NAME = "ethereum_mainnet_all_logs_18426253_18426303.cryo.parquet"
_DATA_DIR = Path("/work/shared/data")

FIRST_BLOCK = 18426253
LAST_BLOCK = 18426303
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
APPROVAL = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
SYNC = "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1"
SWAP = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"


@pytest.fixture(scope="module")
def gz_path() -> Path:
    path = _DATA_DIR / _GZ_NAME
    if not path.is_file():
        path = Path(__file__).resolve().parent.parent / "examples" / "erc20" / "data" / _GZ_NAME
    assert path.is_file(), f"shared data file {_GZ_NAME} is missing"
    return path


@pytest.fixture(scope="module")
def pq_path() -> Path:
    path = _DATA_DIR / _PQ_NAME
    assert path.is_file(), f"shared data file {path} is missing"
    return path


@pytest.fixture(params=["search", "split"])
def reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """JSON lines read by searching each block for wanted topic0s, or by splitting every block.

    By default a block is split when the block before it was mostly wanted
    lines (``_jsonl._DENSE_SHARE``); both ways must give the same logs and errors.
    """
    monkeypatch.setattr(_jsonl, "_DENSE_SHARE", 2.0 if request.param == "search" else 0.0)
    return str(request.param)


@pytest.fixture(scope="module")
def rows(gz_path: Path) -> list[dict[str, Any]]:
    """The shared file's lines as parsed JSON, in file order."""
    with gzip.open(gz_path, "rb") as f:
        return [orjson.loads(line) for line in f]


def _read(
    path: Path, log_filter: LogFilter, start: int = 0, end: int | None = None, **kw: Any
) -> list[RawLog]:
    return [
        log
        for chunk in read_log_file(
            path, log_filter=log_filter, start_block=start, end_block=end, **kw
        )
        for log in chunk
    ]


def _expected(
    rows: list[dict[str, Any]], log_filter: LogFilter, start: int = 0, end: int | None = None
) -> list[tuple[int, int]]:
    """(block, log index) of the rows a filter and range select, computed the slow, obvious way."""
    out = []
    for r in rows:
        bn, li = int(r["blockNumber"], 16), int(r["logIndex"], 16)
        if (
            r["topics"]
            and log_filter.matches(r["address"], r["topics"][0])
            and bn >= start
            and (end is None or bn <= end)
        ):
            out.append((bn, li))
    return out


def _write_jsonl(path: Path, objs: list[Any], *, gz: bool = False) -> Path:
    text = b"".join(orjson.dumps(o) + b"\n" for o in objs)
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def _log_obj(
    block: int, index: int, *, topic0: str = TRANSFER, address: Any = WETH, **extra: Any
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "address": address,
        "topics": [topic0, "0x" + "0" * 24 + "11" * 20, "0x" + "0" * 24 + "22" * 20],
        "data": "0x" + f"{block * 1000 + index:064x}",
        "blockNumber": hex(block),
        "transactionHash": "0x" + f"{block:032x}{index:032x}",
        "transactionIndex": hex(index // 2),
        "logIndex": hex(index),
        "removed": False,
    }
    obj.update(extra)
    return obj


# --------------------------------------------------------------------------
# LogFilter
# --------------------------------------------------------------------------


def test_log_filter_normalises_and_matches() -> None:
    f = LogFilter(
        {
            TRANSFER.upper().replace("0X", "0x"): frozenset({WETH.upper().replace("0X", "0x")}),
            SYNC: None,
        }
    )
    assert f.topics == frozenset({TRANSFER, SYNC})
    assert f.addresses(TRANSFER) == frozenset({WETH})
    assert f.addresses(SYNC) is None
    assert f.matches(WETH, TRANSFER)
    assert not f.matches(USDT, TRANSFER)
    assert f.matches(USDT, SYNC)
    assert not f.matches(WETH, APPROVAL)
    assert "LogFilter(" in repr(f)


@pytest.mark.parametrize(
    ("wanted", "reason"),
    [
        ({"0x1234": None}, r"topic0 '0x1234' is not 0x followed by 64 hex digits"),
        ({"ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef00": None}, "topic0"),
        (
            {TRANSFER: frozenset({"0xnothex"})},
            r"address '0xnothex' is not 0x followed by 40 hex digits",
        ),
    ],
)
def test_log_filter_rejects_malformed(
    wanted: dict[str, frozenset[str] | None], reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        LogFilter(wanted)


# --------------------------------------------------------------------------
# The shared mainnet sample
# --------------------------------------------------------------------------

FILTERS: dict[str, dict[str, frozenset[str] | None]] = {
    "transfer-any": {TRANSFER: None},
    "transfer-weth-usdt": {TRANSFER: frozenset({WETH, USDT})},
    "four-topics": {TRANSFER: None, APPROVAL: None, SYNC: frozenset({WETH}), SWAP: None},
    "nothing": {"0x" + "12" * 32: None},
}


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.usefixtures("reading")
def test_gz_and_parquet_give_identical_logs(
    name: str, gz_path: Path, pq_path: Path, rows: list[dict[str, Any]]
) -> None:
    f = LogFilter(FILTERS[name])
    from_gz = _read(gz_path, f)
    from_pq = _read(pq_path, f)
    assert from_gz == from_pq
    assert [(log.block_number, log.log_index) for log in from_gz] == _expected(rows, f)


@pytest.mark.usefixtures("reading")
def test_all_topics_identical_and_complete(
    gz_path: Path, pq_path: Path, rows: list[dict[str, Any]]
) -> None:
    # More than a handful of topics switches the JSON pre-filter to its regex mode.
    f = LogFilter({r["topics"][0]: None for r in rows if r["topics"]})
    assert len(f.topics) > 100
    from_gz = _read(gz_path, f)
    assert from_gz == _read(pq_path, f)
    assert len(from_gz) == sum(1 for r in rows if r["topics"])
    # Every field made it through, lowercase and in chain order.
    first = rows[0]
    assert from_gz[0] == RawLog(
        block_number=FIRST_BLOCK,
        log_index=0,
        transaction_hash=first["transactionHash"],
        address=first["address"],
        topics=tuple(first["topics"]),
        data=first["data"],
        block_hash=None,
        block_timestamp=None,
        transaction_index=0,
    )
    keys = [(log.block_number, log.log_index) for log in from_gz]
    assert keys == sorted(keys)


def test_wildcard_and_address_filter_counts(
    gz_path: Path, pq_path: Path, rows: list[dict[str, Any]]
) -> None:
    for path in (gz_path, pq_path):
        assert len(_read(path, LogFilter({TRANSFER: None}))) == 7800
        weth = _read(path, LogFilter({TRANSFER: frozenset({WETH})}))
        assert {log.address for log in weth} == {WETH}
        assert len(weth) == sum(
            1 for r in rows if r["topics"][:1] == [TRANSFER] and r["address"] == WETH
        )
        both = _read(path, LogFilter({TRANSFER: frozenset({WETH, USDT})}))
        usdt = _read(path, LogFilter({TRANSFER: frozenset({USDT})}))
        assert len(both) == len(weth) + len(usdt)
        assert _read(path, LogFilter({})) == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (FIRST_BLOCK, LAST_BLOCK),
        (18426260, 18426270),
        (18426300, None),
        (18426299, 18426299),
        (0, FIRST_BLOCK - 1),
        (LAST_BLOCK + 1, None),
    ],
)
@pytest.mark.usefixtures("reading")
def test_block_range(
    start: int, end: int | None, gz_path: Path, pq_path: Path, rows: list[dict[str, Any]]
) -> None:
    f = LogFilter({TRANSFER: None, SWAP: None})
    from_gz = _read(gz_path, f, start, end)
    assert [(log.block_number, log.log_index) for log in from_gz] == _expected(rows, f, start, end)
    assert _read(pq_path, f, start, end) == from_gz


@pytest.mark.parametrize("chunk_logs", [1, 7, 150, 5000])
def test_chunks_end_on_block_boundaries(chunk_logs: int, gz_path: Path, pq_path: Path) -> None:
    f = LogFilter({TRANSFER: None})
    for path in (gz_path, pq_path):
        chunks = list(
            read_log_file(path, log_filter=f, start_block=0, end_block=None, chunk_logs=chunk_logs)
        )
        assert all(chunks)
        for a, b in itertools.pairwise(chunks):
            assert a[-1].block_number < b[0].block_number
            # A chunk closes at the first block boundary after reaching chunk_logs.
            assert len(a) >= chunk_logs
            assert (
                len(a) - sum(1 for log in a if log.block_number == a[-1].block_number) < chunk_logs
            )
        assert sum(len(c) for c in chunks) == 7800
    if chunk_logs == 1:
        assert len(chunks) == len({log.block_number for c in chunks for log in c})


def test_stats_and_early_stop(
    gz_path: Path, pq_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = LogFilter({TRANSFER: None})
    # Searching parses only the lines that hold the Transfer topic0; splitting parses all.
    for share, parsed in ((2.0, 7800), (0.0, 17096)):
        monkeypatch.setattr(_jsonl, "_DENSE_SHARE", share)
        stats = FileReadStats()
        assert len(_read(gz_path, f, stats=stats)) == 7800
        assert stats == FileReadStats(
            lines_read=17096, lines_parsed=parsed, logs_yielded=7800, removed_skipped=0
        )
        assert stats.lines_skipped == 17096 - 7800
    monkeypatch.setattr(_jsonl, "_DENSE_SHARE", 2.0)

    # Stop once past end_block: the file holds ~10 MB in ~1 MiB blocks, so
    # reading up to its third block leaves most lines unread.
    early = FileReadStats()
    logs = _read(gz_path, f, 0, FIRST_BLOCK + 2, stats=early)
    assert logs
    assert logs[-1].block_number <= FIRST_BLOCK + 2
    assert early.lines_read < 17096 // 2
    assert early.logs_yielded == len(logs)

    # Blocks entirely before start_block are skipped without parsing.
    late = FileReadStats()
    logs = _read(gz_path, f, LAST_BLOCK - 1, None, stats=late)
    assert late.lines_read == 17096
    assert late.lines_parsed < 7800 // 2
    assert late.logs_yielded == len(logs) > 0

    pq_stats = FileReadStats()
    _read(pq_path, f, stats=pq_stats)
    assert pq_stats == FileReadStats(
        lines_read=17096, lines_parsed=7800, logs_yielded=7800, removed_skipped=0
    )


def test_last_block_in_file(gz_path: Path, pq_path: Path, tmp_path: Path) -> None:
    assert last_block_in_file(gz_path) == LAST_BLOCK
    assert last_block_in_file(pq_path) == LAST_BLOCK
    plain = tmp_path / "logs.jsonl"
    plain.write_bytes(gzip.decompress(gz_path.read_bytes()) + b"\n\n")
    assert last_block_in_file(plain) == LAST_BLOCK
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert last_block_in_file(empty) is None
    empty_gz = tmp_path / "empty.jsonl.gz"
    empty_gz.write_bytes(gzip.compress(b""))
    assert last_block_in_file(empty_gz) is None
    bad = _write_jsonl(tmp_path / "bad.jsonl", [_log_obj(5, 0), {"address": WETH}])
    with pytest.raises(SourceError, match=r"bad.jsonl, last line: missing field 'blockNumber'"):
        last_block_in_file(bad)


# --------------------------------------------------------------------------
# File formats and spellings
# --------------------------------------------------------------------------


def test_plain_gz_and_multi_member_gz_are_equivalent(gz_path: Path, tmp_path: Path) -> None:
    raw = gzip.decompress(gz_path.read_bytes())
    plain = tmp_path / "logs.jsonl"
    plain.write_bytes(raw)
    cut = raw.index(b"\n", len(raw) // 3) + 1
    joined = tmp_path / "joined.jsonl.gz"  # two gzip members, as `cat a.gz b.gz` makes
    # ...and zero padding after the last member, which gzip tolerates too.
    joined.write_bytes(gzip.compress(raw[:cut]) + gzip.compress(raw[cut:]) + b"\x00" * 300_000)
    f = LogFilter(FILTERS["four-topics"])
    expected = _read(gz_path, f)
    assert _read(plain, f) == expected
    assert _read(joined, f) == expected
    assert last_block_in_file(joined) == LAST_BLOCK


@pytest.mark.usefixtures("reading")
def test_spelling_variants(tmp_path: Path) -> None:
    """Uppercase hex, plain-int quantities, odd spacing, CRLF, optional fields, removed logs."""
    logs = [_log_obj(10, i) for i in range(6)]
    logs[1]["blockNumber"] = 10  # plain JSON integers
    logs[1]["logIndex"] = 1
    logs[2]["blockHash"] = "0x" + "AB" * 32
    logs[2]["blockTimestamp"] = "0x65307180"
    logs[3]["blockTimestamp"] = 1697673600
    logs[4]["removed"] = True
    lines = [orjson.dumps(o) for o in logs]
    # Uppercase hex everywhere in one line (keys stay as they are).
    lines[0] = (
        lines[0]
        .replace(TRANSFER[2:].encode(), TRANSFER[2:].upper().encode())
        .replace(WETH[2:].encode(), WETH[2:].upper().encode())
    )
    # Unusual JSON: spacing, and a key spelled with an escape, which the
    # many-topics regex pre-filter does not recognise: it must still not lose it.
    lines[5] = (
        orjson.dumps(logs[5], option=orjson.OPT_INDENT_2)
        .replace(b"\n", b" ")
        .replace(b'"topics"', b'"\\u0074opics"')
    )
    path = tmp_path / "variants.jsonl"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")

    many = {TRANSFER: None, **{"0x" + f"{i:064x}": None for i in range(20)}}
    for wanted in ({TRANSFER: None}, {TRANSFER: frozenset({WETH})}, many):
        stats = FileReadStats()
        got = _read(path, LogFilter(wanted), stats=stats)
        assert [log.log_index for log in got] == [0, 1, 2, 3, 5]
        assert stats.removed_skipped == 1
        assert got[0].topics[0] == TRANSFER
        assert got[0].address == WETH
        assert got[1].block_number == 10
        assert got[2].block_hash == "0x" + "ab" * 32
        assert got[2].block_timestamp == 0x65307180
        assert got[3].block_timestamp == 1697673600
        assert got[4].transaction_index == 2


@pytest.mark.usefixtures("reading")
def test_uppercase_file_is_not_dropped(gz_path: Path, tmp_path: Path) -> None:
    def shout(hex_text: str) -> str:
        return "0x" + hex_text[2:].upper()

    with gzip.open(gz_path, "rb") as src:
        objs = [orjson.loads(line) for line in src]
    for o in objs:
        o["address"] = shout(o["address"])
        o["topics"] = [shout(t) for t in o["topics"]]
        o["data"] = shout(o["data"])
        o["transactionHash"] = shout(o["transactionHash"])
    path = _write_jsonl(tmp_path / "upper.jsonl", objs)
    for wanted in ({TRANSFER: frozenset({WETH})}, FILTERS["four-topics"]):
        f = LogFilter(wanted)
        assert _read(path, f) == _read(gz_path, f)


@pytest.mark.usefixtures("reading")
def test_empty_topics_and_blank_lines(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "t.jsonl", [_log_obj(1, 0, topics=[]), _log_obj(1, 1)])
    path.write_bytes(b"\n" + path.read_bytes().replace(b"\n", b"\n\n"))
    for wanted in (
        {TRANSFER: None},
        {"0x" + f"{i:064x}": None for i in range(20)} | {TRANSFER: None},
    ):
        assert [log.log_index for log in _read(path, LogFilter(wanted))] == [1]


def test_dense_blocks_are_split_and_sparse_ones_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the reading follows the file: split while wanted lines dominate, else search."""
    other = "0x" + "12" * 32
    # ~1 MiB blocks: mostly Transfers, then mostly other topics, then Transfers again.
    objs = [_log_obj(1, i) for i in range(3000)]
    objs += [_log_obj(2, i, topic0=other) for i in range(6000)]
    objs += [_log_obj(2, 6000 + i) for i in range(3000)]
    path = _write_jsonl(tmp_path / "mixed.jsonl", objs)
    f = LogFilter({TRANSFER: None})
    counts = {}
    for share in (2.0, 0.0, 0.5):
        monkeypatch.setattr(_jsonl, "_DENSE_SHARE", share)
        stats = FileReadStats()
        got = _read(path, f, stats=stats)
        assert [(log.block_number, log.log_index) for log in got] == [
            (int(o["blockNumber"], 16), int(o["logIndex"], 16))
            for o in objs
            if o["topics"][0] == TRANSFER
        ]
        counts[share] = stats.lines_parsed
    assert counts[2.0] == 6000
    assert counts[0.0] == 12000
    # The default splits some blocks (after a mostly-Transfer block), not all.
    assert 6000 < counts[0.5] < 12000


@pytest.mark.usefixtures("reading")
def test_broken_lines_without_a_wanted_topic_are_skipped(tmp_path: Path) -> None:
    """A line no search would look at stays unread when the block is split and parsed whole."""
    other = "0x" + "12" * 32
    junk = [
        b"not json at all",
        b"[1, 2, 3]",
        b"   ",
        orjson.dumps({"topics": [other]}),  # a log of another topic, fields missing
        orjson.dumps(_log_obj(1, 3, topic0=other, data=5)),
        orjson.dumps(_log_obj(0, 0, topic0=other)),  # out of order, but not wanted
    ]
    lines = [orjson.dumps(_log_obj(1, 0)), *junk, orjson.dumps(_log_obj(1, 1))]
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    got = _read(path, LogFilter({TRANSFER: None}))
    assert [(log.block_number, log.log_index) for log in got] == [(1, 0), (1, 1)]


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    f = LogFilter({TRANSFER: None})
    missing = tmp_path / "nope.jsonl.gz"
    with pytest.raises(SourceError, match=r"log file .*nope.jsonl.gz does not exist"):
        read_log_file(missing, log_filter=f, start_block=0, end_block=None)
    with pytest.raises(SourceError, match="does not exist"):
        last_block_in_file(missing)
    csv = tmp_path / "logs.csv"
    csv.write_text("x")
    with pytest.raises(
        SourceError, match=r"unsupported file type; expected .*\.jsonl, \.jsonl\.gz or \.parquet"
    ):
        read_log_file(csv, log_filter=f, start_block=0, end_block=None)
    directory = tmp_path / "dir.parquet"
    directory.mkdir()
    with pytest.raises(SourceError, match="not a regular file"):
        read_log_file(directory, log_filter=f, start_block=0, end_block=None)


@pytest.mark.usefixtures("reading")
def test_unsorted_input_raises_with_line_number(tmp_path: Path) -> None:
    logs = [_log_obj(1, 0), _log_obj(1, 1), _log_obj(2, 0), _log_obj(1, 2), _log_obj(3, 0)]
    for gz in (False, True):
        path = _write_jsonl(tmp_path / f"unsorted.jsonl{'.gz' if gz else ''}", logs, gz=gz)
        with pytest.raises(
            SourceError,
            match=r"unsorted\.jsonl(\.gz)?, line 4: log \(block 1, log index 2\) comes after \(block 2, log index 0\)",
        ):
            _read(path, LogFilter({TRANSFER: None}))


@pytest.mark.usefixtures("reading")
def test_duplicate_log_index_raises(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "dup.jsonl", [_log_obj(1, 0), _log_obj(1, 1), _log_obj(1, 1)])
    with pytest.raises(
        SourceError,
        match=r"line 3: log \(block 1, log index 1\) comes after \(block 1, log index 1\)",
    ):
        _read(path, LogFilter({TRANSFER: None}))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        # Only lines holding a wanted topic0 are parsed, so the broken ones here all hold one.
        (b'{"topics": ["' + TRANSFER.encode() + b'"], "address": "0x', r"line 2: not valid JSON"),
        (b"[1, 2, 3] " + TRANSFER.encode(), r"line 2: not valid JSON"),
        (orjson.dumps([TRANSFER]), r"line 2: expected a JSON object"),
        (
            orjson.dumps({k: v for k, v in _log_obj(1, 1).items() if k != "blockNumber"}),
            r"line 2: missing field 'blockNumber'",
        ),
        (
            orjson.dumps({k: v for k, v in _log_obj(1, 1).items() if k != "address"}),
            r"line 2: missing field 'address'",
        ),
        (
            orjson.dumps({k: v for k, v in _log_obj(1, 1).items() if k != "transactionHash"}),
            r"line 2: missing field 'transactionHash'",
        ),
        (orjson.dumps(_log_obj(1, 1, data=5)), r"line 2: field 'data' must be a hex string, got 5"),
        (
            orjson.dumps(_log_obj(1, 1, logIndex="0xzz")),
            r"line 2: field 'logIndex' is not a hex quantity or integer: '0xzz'",
        ),
        (
            orjson.dumps(_log_obj(1, 1, blockNumber=1.5)),
            r"line 2: field 'blockNumber' is not a hex quantity",
        ),
        (
            orjson.dumps(_log_obj(1, 1, blockTimestamp=[1])),
            r"line 2: field 'blockTimestamp' is not a hex quantity",
        ),
        (
            orjson.dumps(_log_obj(1, 1, topics=[TRANSFER, 7])),
            r"line 2: field 'topics' must be a list of hex strings",
        ),
        (
            orjson.dumps(_log_obj(1, 1, topics=[TRANSFER] * 5)),
            r"line 2: field 'topics' has 5 entries",
        ),
        (
            orjson.dumps(_log_obj(1, 1, transactionHash=None)),
            r"line 2: missing field 'transactionHash'",
        ),
    ],
)
@pytest.mark.usefixtures("reading")
def test_malformed_line_raises_with_line_and_field(
    line: bytes, reason: str, tmp_path: Path
) -> None:
    body = (
        orjson.dumps(_log_obj(1, 0)) + b"\n" + line + b"\n" + orjson.dumps(_log_obj(1, 5)) + b"\n"
    )
    for many in (False, True):
        wanted: dict[str, frozenset[str] | None] = {TRANSFER: None}
        if many:
            wanted |= {"0x" + f"{i:064x}": None for i in range(20)}
        path = tmp_path / "bad.jsonl"
        path.write_bytes(body)
        with pytest.raises(SourceError, match=r"log file .*bad\.jsonl, " + reason):
            _read(path, LogFilter(wanted))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            orjson.dumps(_log_obj(1, 1, topics=TRANSFER)),
            r"field 'topics' must be a list of hex strings",
        ),
        (orjson.dumps(_log_obj(1, 1, address=None)), r"missing field 'address'"),
        (orjson.dumps(_log_obj(1, 1, address=7)), r"field 'address' must be a hex string, got 7"),
        (
            orjson.dumps(_log_obj(1, 1, topics=[None, TRANSFER])),
            r"field 'topics' must be a list of hex strings",
        ),
    ],
)
@pytest.mark.usefixtures("reading")
def test_malformed_shape_is_caught_before_the_address_filter(
    line: bytes, reason: str, tmp_path: Path
) -> None:
    """A wrong shape must not pass for "not wanted" just because an address filter is on."""
    path = tmp_path / "shape.jsonl"
    path.write_bytes(orjson.dumps(_log_obj(1, 0)) + b"\n" + line + b"\n")
    with pytest.raises(SourceError, match=r"shape\.jsonl, line 2: " + reason):
        _read(path, LogFilter({TRANSFER: frozenset({USDT})}))


@pytest.mark.usefixtures("reading")
def test_error_line_numbers_span_blocks(gz_path: Path, tmp_path: Path) -> None:
    """Line numbers stay right deep into a file read in many blocks."""
    raw = gzip.decompress(gz_path.read_bytes()).splitlines(keepends=True)
    raw.insert(15000, orjson.dumps(_log_obj(1, 0)) + b"\n")  # block 1 after block 18426300
    path = tmp_path / "late.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(raw)))
    with pytest.raises(SourceError, match=r"line 15001: log \(block 1, log index 0\)"):
        _read(path, LogFilter({TRANSFER: None}))


def test_corrupt_and_truncated_gzip(gz_path: Path, tmp_path: Path) -> None:
    f = LogFilter({TRANSFER: None})
    data = gz_path.read_bytes()
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"cut\.jsonl\.gz: the gzip stream is truncated"):
        _read(truncated, f)
    garbage = tmp_path / "garbage.jsonl.gz"
    garbage.write_bytes(b"this is not gzip at all\n")
    with pytest.raises(
        SourceError, match=r"garbage\.jsonl\.gz: cannot read \(corrupt or truncated\?\)"
    ):
        _read(garbage, f)


# --------------------------------------------------------------------------
# Parquet specifics
# --------------------------------------------------------------------------


def _sorted_table(pq_path: Path) -> pa.Table:
    table = pq.read_table(pq_path)
    return table.sort_by([("block_number", "ascending"), ("log_index", "ascending")])


def test_parquet_many_row_groups_and_range_skip(
    pq_path: Path, gz_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "groups.parquet"
    # Small row groups split blocks across groups: the reader must stitch them.
    pq.write_table(_sorted_table(pq_path), path, row_group_size=333)
    assert pq.ParquetFile(path).metadata.num_row_groups > 40
    f = LogFilter(FILTERS["four-topics"])
    assert _read(path, f) == _read(gz_path, f)
    for chunk_logs in (1, 50):
        chunks = list(
            read_log_file(path, log_filter=f, start_block=0, end_block=None, chunk_logs=chunk_logs)
        )
        for a, b in itertools.pairwise(chunks):
            assert a[-1].block_number < b[0].block_number
    stats = FileReadStats()
    got = _read(path, f, 18426280, 18426285, stats=stats)
    assert got == _read(gz_path, f, 18426280, 18426285)
    assert stats.lines_read == 17096  # every row is accounted for, read or skipped
    assert len(got) <= stats.lines_parsed < 17096 // 5
    assert last_block_in_file(path) == LAST_BLOCK


def test_parquet_row_groups_out_of_order_raise(pq_path: Path, tmp_path: Path) -> None:
    table = _sorted_table(pq_path)
    half = table.num_rows // 2
    path = tmp_path / "swapped.parquet"
    with pq.ParquetWriter(path, table.schema) as writer:
        writer.write_table(table.slice(half), row_group_size=table.num_rows)
        writer.write_table(table.slice(0, half), row_group_size=table.num_rows)
    with pytest.raises(
        SourceError,
        match=r"swapped\.parquet, row \d+: row group 1 has block \d+, but an earlier row group already reached block \d+",
    ):
        _read(path, LogFilter({TRANSFER: None}))


def test_parquet_duplicate_rows_raise(pq_path: Path, tmp_path: Path) -> None:
    table = _sorted_table(pq_path)
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.concat_tables([table, table.slice(100, 1)]), path)
    every_topic0 = {
        "0x" + t.hex(): None for t in table.column("topic0").to_pylist() if t is not None
    }
    with pytest.raises(
        SourceError, match=r"dup\.parquet, rows 100 and 17096: both hold block \d+, log index \d+"
    ):
        _read(path, LogFilter(every_topic0))


def test_parquet_nulls_and_missing_columns(pq_path: Path, tmp_path: Path) -> None:
    table = _sorted_table(pq_path).slice(0, 50)
    f = LogFilter({TRANSFER: None})
    no_data = tmp_path / "nodata.parquet"
    pq.write_table(table.drop_columns(["data"]), no_data)
    with pytest.raises(SourceError, match=r"nodata\.parquet: parquet file lacks column\(s\) data"):
        _read(no_data, f)
    null_hash = tmp_path / "nullhash.parquet"
    hashes = table.column("transaction_hash").to_pylist()
    hashes[1] = None  # row 1 is an ERC20 Transfer (log index 1 of the first block)
    pq.write_table(
        table.set_column(3, "transaction_hash", pa.array(hashes, pa.large_binary())), null_hash
    )
    with pytest.raises(
        SourceError, match=r"nullhash\.parquet, row 1: column transaction_hash is null"
    ):
        _read(null_hash, f)
    gap = tmp_path / "gap.parquet"
    topic1 = table.column("topic1").to_pylist()
    topic1[0] = None
    pq.write_table(
        table.set_column(
            table.schema.get_field_index("topic1"), "topic1", pa.array(topic1, pa.large_binary())
        ),
        gap,
    )
    with pytest.raises(SourceError, match=r"gap\.parquet, row 0: topic1 is null but topic2 is not"):
        _read(gap, f)


def test_parquet_hex_text_columns_and_extras(pq_path: Path, gz_path: Path, tmp_path: Path) -> None:
    """Hex strings instead of bytes, plus block_hash and block_timestamp columns."""
    table = _sorted_table(pq_path)
    columns: dict[str, Any] = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_large_binary(col.type):
            columns[name] = pa.array(
                [None if v is None else "0x" + v.hex().upper() for v in col.to_pylist()],
                pa.string(),
            )
        else:
            columns[name] = col
    n = table.num_rows
    columns["block_hash"] = pa.array(
        ["0x" + f"{b:064x}" for b in table.column("block_number").to_pylist()], pa.string()
    )
    columns["block_timestamp"] = pa.array(
        [1_697_000_000 + 12 * (b - FIRST_BLOCK) for b in table.column("block_number").to_pylist()],
        pa.timestamp("ms", tz="UTC"),
    )
    assert len(columns["block_hash"]) == n
    path = tmp_path / "text.parquet"
    pq.write_table(pa.table(columns), path)
    f = LogFilter({TRANSFER: frozenset({WETH})})
    got = _read(path, f)
    plain = _read(gz_path, f)
    assert [log._replace(block_hash=None, block_timestamp=None) for log in got] == plain
    assert got[0].block_hash == "0x" + f"{got[0].block_number:064x}"
    # The ms values above are tiny (1.697e9 ms ~ 1970-01-20); seconds = ms // 1000.
    assert (
        got[0].block_timestamp == (1_697_000_000 + 12 * (got[0].block_number - FIRST_BLOCK)) // 1000
    )
