"""Reading a log file in a child process.

Reading, inflating and parsing JSON lines, then routing and decoding the
wanted logs, is about half of the work per event, and in a thread it would
hold the same GIL as the handlers.  A child process does all of it on the
other core and sends each chunk to the parent as a ``marshal``-ed tuple
``(last block, decoded logs, skip counts)``, the decoded logs in the
plain-tuple form of ``_decode.py`` (marshal loads about a million of them
in a fraction of a second, against several microseconds each to parse and
decode; see docs/design.md).  The parent only wraps each in an ``Event``.

The pipe is the back-pressure: the child blocks on a full pipe, and the
parent receives only when its channel to the processing loop has room.
"""

from __future__ import annotations

import marshal
import multiprocessing
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from .._errors import DecodeError, SourceError
from ._decode import DecodedLog, DecodeRoute, LogDecoder, route_filter
from ._file import read_log_file
from ._log import BLOCK_NUMBER

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

__all__ = ["open_file_reader"]

_CHUNK, _ERROR, _DONE = b"C", b"E", b"D"


# Errors the child reports by class, so the parent raises the same one.
_ERRORS: dict[str, type[SourceError] | type[DecodeError]] = {
    "SourceError": SourceError,
    "DecodeError": DecodeError,
}


def _child(
    conn: Connection,
    path: str,
    chain_id: int,
    routes: Sequence[DecodeRoute],
    keep_raw: bool,
    start_block: int,
    end_block: int | None,
    chunk_logs: int,
) -> None:
    """The child process: stream decoded chunks until the file (or end_block) ends."""
    try:
        decoder = LogDecoder(chain_id, routes, keep_raw=keep_raw)
        for chunk in read_log_file(
            Path(path),
            log_filter=route_filter(routes),
            start_block=start_block,
            end_block=end_block,
            chunk_logs=chunk_logs,
        ):
            decoded = decoder.decode(chunk)
            last = chunk[-1][BLOCK_NUMBER]
            conn.send_bytes(_CHUNK + marshal.dumps((last, decoded, decoder.take_skipped())))
        conn.send_bytes(_DONE)
    except (SourceError, DecodeError) as exc:
        conn.send_bytes(_ERROR + marshal.dumps((type(exc).__name__, str(exc))))
    except BrokenPipeError:
        pass  # the parent stopped listening: it is shutting down
    except BaseException as exc:  # anything else: report it, do not die silently
        message = f"log reader for {path} failed: {type(exc).__name__}: {exc}"
        conn.send_bytes(_ERROR + marshal.dumps(("SourceError", message)))
    finally:
        conn.close()


class _Chunks:
    """Async iterator over the chunks the child sends, in the consumer's own task."""

    def __init__(self, path: Path, receive_end: Connection, process: BaseProcess) -> None:
        self._path = path
        self._receive_end = receive_end
        self._process = process

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> tuple[int, list[DecodedLog], dict[int, int]]:
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
        if tag == _CHUNK:
            chunk: tuple[int, list[DecodedLog], dict[int, int]] = marshal.loads(
                memoryview(message)[1:]
            )
            return chunk
        if tag == _DONE:
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
) -> AsyncIterator[AsyncIterator[tuple[int, list[DecodedLog], dict[int, int]]]]:
    """Run a reader process for ``path``; yield an async iterator of decoded chunks.

    Each chunk is ``(last block, decoded logs, skip counts by route index)``
    and ends on a block boundary; its logs may all have been skipped.

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
    ctx = multiprocessing.get_context("spawn")
    receive_end, send_end = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_child,
        args=(
            send_end,
            str(path),
            chain_id,
            list(routes),
            keep_raw,
            start_block,
            end_block,
            chunk_logs,
        ),
        name=f"indexer-reader:{path.name}",
        daemon=True,
    )
    await trio.to_thread.run_sync(process.start)
    send_end.close()
    try:
        yield _Chunks(path, receive_end, process)
    finally:
        with trio.CancelScope(shield=True):
            if process.is_alive():
                process.terminate()
            await trio.to_thread.run_sync(process.join, 5)
            receive_end.close()
