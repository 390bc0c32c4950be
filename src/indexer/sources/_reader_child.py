"""The file reader's child process: read, filter, decode and send chunks (``_process.py``).

This module is what the child imports, kept to what it runs (no Trio): the
child's start is CPU a run on two busy cores does not get back.
"""

from __future__ import annotations

import marshal
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import DecodeError, SourceError
from .._gc import tune_gc
from ._child import deaf_to_sigint
from ._decode import LogDecoder, route_filter
from ._file import read_log_file
from ._file_fields import FileJoin

if TYPE_CHECKING:
    from collections.abc import Sequence
    from multiprocessing.connection import Connection

    from ._decode import DecodedLog, DecodeRoute
    from ._file_fields import FileFieldPlan, Joined

__all__ = ["CHUNK", "DONE", "ERROR", "reader_main"]

# A message's first byte: a chunk, an error, or the end.
CHUNK, ERROR, DONE = b"C", b"E", b"D"


def reader_main(
    conn: Connection,
    path: str,
    chain_id: int,
    routes: Sequence[DecodeRoute],
    keep_raw: bool,
    start_block: int,
    end_block: int | None,
    chunk_logs: int,
    plan: FileFieldPlan | None,
) -> None:
    """The child process: stream decoded chunks until the file (or end_block) ends."""
    deaf_to_sigint()
    tune_gc()

    def send(
        last: int, decoded: list[DecodedLog], skipped: dict[int, int], joined: Joined | None
    ) -> None:
        conn.send_bytes(CHUNK + marshal.dumps((last, decoded, skipped, joined)))

    try:
        decoder = LogDecoder(chain_id, routes, keep_raw=keep_raw)
        join = FileJoin(plan) if plan is not None else None
        handlers = join is not None and bool(join.plan.schedule)
        done = start_block - 1  # the chunks sent cover blocks through this one
        for chunk in read_log_file(
            Path(path),
            log_filter=route_filter(routes),
            start_block=start_block,
            end_block=end_block,
            chunk_logs=chunk_logs,
        ):
            decoded = decoder.decode(chunk)
            last = chunk[-1].block_number
            joined = None
            if join is not None:
                if handlers:
                    # Handler blocks before the logs, a bounded number per chunk.
                    first_log = chunk[0].block_number
                    for high, rows in join.handler_chunks(done + 1, first_log - 1, chunk_logs):
                        send(high, [], {}, rows)
                        done = high
                joined = join.join(done + 1, last, decoded)
            send(last, decoded, decoder.take_skipped(), joined)
            done = last
        if join is not None and handlers:
            # Block handlers run to end_block, or to the blocks file's end.
            top = end_block if end_block is not None else max(join.last_block() or done, done)
            for high, rows in join.handler_chunks(done + 1, top, chunk_logs):
                send(high, [], {}, rows)
                done = high
            if done < top:
                send(top, [], {}, None)
        conn.send_bytes(DONE)
    except (SourceError, DecodeError) as exc:
        conn.send_bytes(ERROR + marshal.dumps((type(exc).__name__, str(exc))))
    except BrokenPipeError:
        pass  # the parent stopped listening: it is shutting down
    except BaseException as exc:  # anything else: report it, do not die silently
        message = f"log reader for {path} failed: {type(exc).__name__}: {exc}"
        conn.send_bytes(ERROR + marshal.dumps(("SourceError", message)))
    finally:
        conn.close()
