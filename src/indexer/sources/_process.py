"""Reading a log file in a child process.

Reading, inflating and parsing JSON lines, then routing and decoding the
wanted logs, is about half of the work per event, and in a thread it would
hold the same GIL as the handlers.  A child process does all of it on the
other core and sends each chunk to the parent as a ``marshal``-ed tuple
``(last block, decoded logs, skip counts)``, the decoded logs in the
plain-tuple form of ``_decode.py`` (marshal loads about a million of them
in a fraction of a second, against several microseconds each to parse and
decode; see docs/design.md).  The parent only wraps each in an ``Event``.

With a ``field_selection`` or block handlers, the child also joins the
chunk's rows of cryo's transactions and blocks files (see
``_file_fields.py``) and sends them with the chunk; the parent turns them
into ``Transaction`` and ``Block`` objects.

The pipe is the back-pressure: the child blocks on a full pipe, and the
parent receives only when its channel to the processing loop has room.
The child's side is ``_reader_child.py``, so that the child imports no Trio.
"""

from __future__ import annotations

import marshal
import multiprocessing
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from .._errors import DecodeError, SourceError
from ._decode import DecodedLog, DecodeRoute
from ._file_fields import FileFieldPlan, FileFields
from ._reader_child import CHUNK, DONE, reader_main
from ._schedule import BlockSchedule
from ._spawn import start_child

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess
    from pathlib import Path

    from .._fields import Block

# What the parent gets per chunk: (last block, decoded logs, skip counts by
# route, the Blocks block handlers run at in the chunk or None).
Chunk = tuple[int, list[DecodedLog], dict[int, int], "dict[int, Block] | None"]

__all__ = ["open_file_reader"]

_NO_SCHEDULE = BlockSchedule()


# Errors the child reports by class, so the parent raises the same one.
_ERRORS: dict[str, type[SourceError] | type[DecodeError]] = {
    "SourceError": SourceError,
    "DecodeError": DecodeError,
}


class _Chunks:
    """Async iterator over the chunks the child sends, in the consumer's own task."""

    def __init__(
        self,
        path: Path,
        receive_end: Connection,
        process: BaseProcess,
        fields: FileFields | None,
    ) -> None:
        self._path = path
        self._receive_end = receive_end
        self._process = process
        self._fields = fields

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> Chunk:
        try:
            # Abandoned on cancellation: leaving open_file_reader terminates
            # the process, which ends the blocked recv with EOFError.
            message = await trio.to_thread.run_sync(
                self._receive_end.recv_bytes, abandon_on_cancel=True
            )
        except EOFError:
            await trio.to_thread.run_sync(self._process.join, 5)
            raise SourceError(
                f"log reader process for {self._path} ended unexpectedly (exit code {self._process.exitcode})."
            ) from None
        tag = message[:1]
        if tag == CHUNK:
            last, decoded, skipped, joined = marshal.loads(memoryview(message)[1:])
            if joined is None:
                return last, decoded, skipped, None
            assert self._fields is not None
            decoded, blocks = self._fields.apply(decoded, joined)
            return last, decoded, skipped, blocks
        if tag == DONE:
            raise StopAsyncIteration
        kind, text = marshal.loads(memoryview(message)[1:])
        raise _ERRORS[kind](text)


@asynccontextmanager
async def open_file_reader(
    path: Path,
    *,
    chain_id: int,
    routes: Sequence[DecodeRoute],
    keep_raw: bool,
    start_block: int,
    end_block: int | None,
    chunk_logs: int,
    blocks: Path | None = None,
    transactions: Path | None = None,
    block_keys: frozenset[str] = frozenset(),
    schedule: BlockSchedule | None = None,
) -> AsyncIterator[AsyncIterator[Chunk]]:
    """Run a reader process for ``path``; yield an async iterator of decoded chunks.

    Each chunk is ``(last block, decoded logs, skip counts by route index,
    blocks)`` and ends on a block boundary; its logs may all have been
    skipped.  The events of routes with a ``field_selection`` carry their
    Transaction and Block from the cryo ``transactions`` and ``blocks``
    files; ``blocks`` of a chunk holds a Block (with ``block_keys``) for each
    block of it at which ``schedule`` runs block handlers, else None.  With
    block handlers, chunks go on past the logs, to ``end_block`` or the
    blocks file's last block; some chunks then have no logs.

    Resource handling: the process lives exactly as long as the ``async
    with`` block; leaving it (normally, by error or by cancellation)
    terminates and reaps the process.  No task is started: chunks are
    received in the consumer's task, so errors surface there directly.

    Raises:
        SourceError: from the child (file missing, malformed line, ...),
            with its message, or if the child dies.
        DecodeError: a log of a contract with explicit addresses does not
            fit its event.
    """
    plan = FileFieldPlan.build(
        chain_id,
        routes,
        blocks=blocks,
        transactions=transactions,
        handler_keys=block_keys,
        schedule=schedule if schedule is not None else _NO_SCHEDULE,
    )
    ctx = multiprocessing.get_context("spawn")
    receive_end, send_end = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=reader_main,
        args=(
            send_end,
            str(path),
            chain_id,
            list(routes),
            keep_raw,
            start_block,
            end_block,
            chunk_logs,
            plan,
        ),
        name=f"indexer-reader:{path.name}",
        daemon=True,
    )
    await start_child(process)
    send_end.close()
    try:
        yield _Chunks(path, receive_end, process, FileFields(plan) if plan is not None else None)
    finally:
        with trio.CancelScope(shield=True):
            if process.is_alive():
                process.terminate()
            await trio.to_thread.run_sync(process.join, 5)
            receive_end.close()
