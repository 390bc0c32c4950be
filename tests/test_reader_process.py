"""The file reader child process: results, errors, and that it never outlives its block."""

from __future__ import annotations

import multiprocessing
from typing import TYPE_CHECKING, Any

import pytest

from indexer import DecodeError, Event, SourceError
from indexer.abi import parse_event_signature
from indexer.sources import DecodeRoute, LogDecoder, open_file_reader, read_log_file, route_filter

from ._projects import LOGS, TRANSFER

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

ERC20 = DecodeRoute(
    "ERC20",
    parse_event_signature("Transfer(address indexed from, address indexed to, uint256 value)"),
    None,
)


def _in_process(
    routes: Sequence[DecodeRoute], *, keep_raw: bool, chunk_logs: int
) -> list[tuple[int, list[Any], dict[int, int]]]:
    """What the child should send: the same reader and decoder, in this process."""
    decoder = LogDecoder(1, routes, keep_raw=keep_raw)
    return [
        (chunk[-1].block_number, decoder.decode(chunk), decoder.take_skipped())
        for chunk in read_log_file(
            LOGS,
            log_filter=route_filter(routes),
            start_block=0,
            end_block=None,
            chunk_logs=chunk_logs,
        )
    ]


async def _read(
    path: Path, routes: Sequence[DecodeRoute], *, keep_raw: bool = False, chunk_logs: int = 700
) -> list[tuple[int, list[Any], dict[int, int]]]:
    async with open_file_reader(
        path,
        chain_id=1,
        routes=routes,
        keep_raw=keep_raw,
        start_block=0,
        end_block=None,
        chunk_logs=chunk_logs,
    ) as chunks:
        # Without a selection or block handlers, a chunk has no blocks.
        return [(last, decoded, skipped) async for last, decoded, skipped, _ in chunks]


async def test_chunks_equal_the_in_process_reader_and_decoder() -> None:
    got = await _read(LOGS, [ERC20])
    assert got == _in_process([ERC20], keep_raw=False, chunk_logs=700)
    decoded = sum(len(items) for _, items, _ in got)
    skipped = sum(s.get(0, 0) for _, _, s in got)
    # 7,800 logs carry the Transfer topic0; the ERC721-shaped ones are skipped.
    assert (decoded, skipped) == (7430, 370)
    # Each item is ready to become the Event handlers receive.
    route, fields, raw = got[0][1][0]
    event = Event(*fields)
    assert (route, raw) == (0, None)
    assert (event.contract, event.name, event.chain_id) == ("ERC20", "Transfer", 1)
    assert set(event.params) == {"from", "to", "value"}
    # Chunks end on block boundaries, and the last block only grows.
    lasts = [last for last, _, _ in got]
    assert lasts == sorted(set(lasts))


async def test_raw_topics_and_data_come_along_when_kept() -> None:
    got = await _read(LOGS, [ERC20], keep_raw=True, chunk_logs=5000)
    logs = {
        (log.block_number, log.log_index): log
        for chunk in read_log_file(
            LOGS, log_filter=route_filter([ERC20]), start_block=0, end_block=None
        )
        for log in chunk
    }
    checked = 0
    for _, items, _ in got:
        for _route, fields, raw in items:
            event = Event(*fields)
            log = logs[event.block_number, event.log_index]
            assert raw == (log.topics, log.data)
            checked += 1
    assert checked == 7430


async def test_a_log_that_does_not_fit_a_listed_contract_is_a_decode_error() -> None:
    # An ERC721 contract listed explicitly under the ERC20 ABI: its 4-topic
    # Transfers are bad input now, not something to skip.
    erc721 = next(
        log.address
        for chunk in read_log_file(
            LOGS, log_filter=route_filter([ERC20]), start_block=0, end_block=None
        )
        for log in chunk
        if len(log.topics) == 4
    )
    listed = DecodeRoute("Listed", ERC20.event, frozenset({erc721}))
    with pytest.raises(
        DecodeError, match=rf"block \d+ log \d+ .*address {erc721}.*Listed\.Transfer"
    ):
        await _read(LOGS, [listed])


async def test_leaving_early_terminates_the_process() -> None:
    async with open_file_reader(
        LOGS,
        chain_id=1,
        routes=[ERC20],
        keep_raw=False,
        start_block=0,
        end_block=None,
        chunk_logs=10,
    ) as chunks:
        async for _chunk in chunks:
            break
        children = multiprocessing.active_children()
        assert any(p.name.startswith("indexer-reader") for p in children)
    assert not any(p.name.startswith("indexer-reader") for p in multiprocessing.active_children())


async def test_errors_in_the_child_surface_as_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"missing\.jsonl"):
        await _read(tmp_path / "missing.jsonl", [ERC20])


def test_route_filter_merges_addresses_and_wildcards() -> None:
    one, two = "0x" + "1" * 40, "0x" + "2" * 40
    a = DecodeRoute("A", ERC20.event, frozenset({one}))
    b = DecodeRoute("B", ERC20.event, frozenset({two}))
    assert route_filter([a, b]).addresses(TRANSFER) == frozenset({one, two})
    assert route_filter([a, ERC20, b]).addresses(TRANSFER) is None
