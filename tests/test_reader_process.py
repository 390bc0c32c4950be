"""The file reader child process: results, errors, and that it never outlives its block."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from indexer import SourceError
from indexer.sources import RawLog
from indexer.sources._file import LogFilter, read_log_file
from indexer.sources._process import open_file_reader

from ._projects import LOGS, TRANSFER

if TYPE_CHECKING:
    from pathlib import Path


async def test_chunks_equal_the_in_process_reader() -> None:
    wanted = LogFilter({TRANSFER: None})
    expected = [
        [tuple(log) for log in chunk]
        for chunk in read_log_file(
            LOGS, log_filter=wanted, start_block=0, end_block=None, chunk_logs=700
        )
    ]
    async with open_file_reader(
        LOGS, log_filter=wanted, start_block=0, end_block=None, chunk_logs=700
    ) as chunks:
        got = [chunk async for chunk in chunks]
    assert got == expected
    assert sum(map(len, got)) == 7800
    # Plain tuples in RawLog order: usable as RawLogs field for field.
    assert RawLog(*got[0][0]).topics[0] == TRANSFER


async def test_leaving_early_terminates_the_process() -> None:
    import multiprocessing

    async with open_file_reader(
        LOGS, log_filter=LogFilter({TRANSFER: None}), start_block=0, end_block=None, chunk_logs=10
    ) as chunks:
        async for _chunk in chunks:
            break
        children = multiprocessing.active_children()
        assert any(p.name.startswith("indexer-reader") for p in children)
    assert not any(p.name.startswith("indexer-reader") for p in multiprocessing.active_children())


async def test_errors_in_the_child_surface_as_source_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"

    async def read_all() -> None:
        async with open_file_reader(
            missing,
            log_filter=LogFilter({TRANSFER: None}),
            start_block=0,
            end_block=None,
            chunk_logs=10,
        ) as chunks:
            async for _chunk in chunks:
                pass

    with pytest.raises(SourceError, match=r"missing\.jsonl"):
        await read_all()
