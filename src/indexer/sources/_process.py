"""Reading a log file in a child process.

Reading, inflating and parsing JSON lines is about a third of the work per
event, and in a thread it holds the same GIL as the handlers.  A child
process reads and filters the file on the other core and sends each chunk
to the parent as a ``marshal``-ed list of plain tuples in ``RawLog`` field
order (about 1.6 us per log to load, against about 12 us to parse it; see
docs/design.md).  The parent uses the tuples as they are: the processing
loop reads logs by position, so no ``RawLog`` objects are rebuilt.

The pipe is the back-pressure: the child blocks on a full pipe, and the
parent receives only when its channel to the processing loop has room.
"""

from __future__ import annotations

import marshal
import multiprocessing
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .._errors import SourceError
from ._file import LogFilter, read_log_file

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

__all__ = ["open_file_reader"]

_CHUNK, _ERROR, _DONE = b"C", b"E", b"D"


def _child(
    conn: Connection,
    path: str,
    wanted: Mapping[str, frozenset[str] | None],
    start_block: int,
    end_block: int | None,
    chunk_logs: int,
) -> None:
    """The child process: stream chunks until the file (or end_block) ends."""
    try:
        for chunk in read_log_file(
            Path(path),
            log_filter=LogFilter(wanted),
            start_block=start_block,
            end_block=end_block,
            chunk_logs=chunk_logs,
        ):
            conn.send_bytes(_CHUNK + marshal.dumps([tuple(log) for log in chunk]))
        conn.send_bytes(_DONE)
    except SourceError as exc:
        conn.send_bytes(_ERROR + str(exc).encode())
    except BrokenPipeError:
        pass  # the parent stopped listening: it is shutting down
    except BaseException as exc:  # anything else: report it, do not die silently
        conn.send_bytes(
            _ERROR + f"log reader for {path} failed: {type(exc).__name__}: {exc}".encode()
        )
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

    async def __anext__(self) -> list[Any]:
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
            chunk: list[Any] = marshal.loads(memoryview(message)[1:])
            return chunk
        if tag == _DONE:
            raise StopAsyncIteration
        raise SourceError(bytes(message[1:]).decode())


@asynccontextmanager
async def open_file_reader(
    path: Path,
    *,
    log_filter: LogFilter,
    start_block: int,
    end_block: int | None,
    chunk_logs: int,
) -> AsyncIterator[AsyncIterator[list[Any]]]:
    """Run a reader process for ``path``; yield an async iterator of chunks (lists of log tuples).

    Resource handling: the process lives exactly as long as the ``async
    with`` block; leaving it (normally, by error or by cancellation)
    terminates and reaps the process.  No task is started: chunks are
    received in the consumer's task, so errors surface there directly.

    Raises:
        SourceError: from the child (file missing, malformed line, ...),
            with its message, or if the child dies.
    """
    ctx = multiprocessing.get_context("spawn")
    receive_end, send_end = ctx.Pipe(duplex=False)
    wanted = {t: log_filter.addresses(t) for t in log_filter.topics}
    process = ctx.Process(
        target=_child,
        args=(send_end, str(path), wanted, start_block, end_block, chunk_logs),
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
