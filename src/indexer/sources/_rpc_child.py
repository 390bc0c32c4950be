"""The JSON-RPC log worker's child process: fetch a range, decode it, send the parts.

The parent's side, which decides what to ask and checks the answers, is
``_rpc_worker.py`` (its docstring tells the whole design).  This module is
what the child imports, and it is kept to what the child runs: no Trio, no
httpx unless TLS or a proxy asks for it (``_rpc_post.py``), none of the
fetcher's modules.  The child's start is CPU the run does not get back on two
busy cores: importing the parent's side took ~0.19 s, this ~0.05 s.
"""

from __future__ import annotations

import marshal
from typing import TYPE_CHECKING, Any

import orjson

from .._errors import DecodeError, SourceError
from .._gc import tune_gc
from ._child import deaf_to_sigint
from ._decode import DecodeRoute, LogDecoder
from ._rpc_post import BlockingPost, PostError
from ._rpc_ranges import decode_parts, raw_logs, window_consistent

if TYPE_CHECKING:
    from collections.abc import Sequence
    from multiprocessing.connection import Connection

__all__ = ["ChildFetcher", "child_main"]

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_BATCH = 100  # headers per request, as RpcClient.get_blocks sends them


class ChildFetcher:
    """The child's side: one node, one decoder."""

    def __init__(
        self, url: str, timeout: float, chain_id: int, routes: Sequence[DecodeRoute], keep_raw: bool
    ) -> None:
        self.url = url
        self.client = BlockingPost(url, timeout, _HEADERS)
        self.decoder = LogDecoder(chain_id, routes, keep_raw=keep_raw)
        self.ids = 0

    def range(
        self,
        where: str,
        first: int,
        last: int,
        addresses: list[str] | None,
        topic0s: list[str],
        with_first: bool,
        chunk_logs: int,
        window: bool = False,
    ) -> tuple[Any, ...]:
        """One range, as the fetcher would fetch it (``_far``, or ``_in_window`` if ``window``).

        ("parts", parent hash of ``first`` or None, hash of ``last``, parts);
        within the window ("window", parent hash of ``first``, the hash of
        every block, consistent, parts); ("lagging",) for a null header,
        ("error", code, message) for a JSON-RPC error, ("other", why) for
        anything else, or ("raise", class name, message) for what
        ``raw_logs`` or the decoder raised.
        """
        headers: dict[int, Any] = {}
        if window:
            # Headers *before* logs, as the fetcher asks within the window
            # (_rpc_source.py says why).
            lagging = self._headers(range(first, last + 1), headers)
            if lagging is not None:
                return lagging
        # The query RpcClient.get_logs sends.
        query: dict[str, Any] = {"fromBlock": hex(first), "toBlock": hex(last)}
        if addresses is not None:
            query["address"] = addresses
        query["topics"] = [topic0s]
        logs = self._call([("eth_getLogs", [query])])
        if not isinstance(logs, list):
            return logs
        logs = logs[0]
        if not isinstance(logs, list):
            return ("other", "not a list of logs")
        try:
            if window:
                return self._window(where, first, last, logs, headers, chunk_logs)
            need = {int(lg["blockNumber"], 16) for lg in logs if lg.get("blockTimestamp") is None}
        except (AttributeError, KeyError, TypeError, ValueError):
            return ("other", "a malformed log")  # the fetcher's path names it
        need.add(last)
        if with_first:
            need.add(first)
        lagging = self._headers(sorted(need), headers)
        if lagging is not None:
            return lagging
        try:
            first_parent = str(headers[first]["parentHash"]) if with_first else None
            last_hash = str(headers[last]["hash"])
            raws = raw_logs(where, logs, headers)
            parts = decode_parts(self.decoder, first, last, raws, chunk_logs)
        except (SourceError, DecodeError) as exc:
            self.decoder.take_skipped()
            return ("raise", type(exc).__name__, str(exc))
        except (KeyError, TypeError):
            return ("other", "a header without hash or parentHash")
        return ("parts", first_parent, last_hash, parts)

    def _window(
        self,
        where: str,
        first: int,
        last: int,
        logs: list[Any],
        headers: dict[int, Any],
        chunk_logs: int,
    ) -> tuple[Any, ...]:
        """A range within the reorg window, its headers fetched: the checks ``_in_window`` makes."""
        hashes = [str(headers[n]["hash"]) for n in range(first, last + 1)]
        first_parent = str(headers[first]["parentHash"])
        if not window_consistent(first, last, headers, logs):
            return ("window", first_parent, hashes, False, [])
        try:
            parts = decode_parts(
                self.decoder, first, last, raw_logs(where, logs, headers), chunk_logs
            )
        except (SourceError, DecodeError) as exc:
            self.decoder.take_skipped()
            return ("raise", type(exc).__name__, str(exc))
        return ("window", first_parent, hashes, True, parts)

    def _headers(self, numbers: Sequence[int], into: dict[int, Any]) -> tuple[Any, ...] | None:
        """Fetch the headers of ``numbers`` into ``into``; the reply to send if that failed."""
        for i in range(0, len(numbers), _BATCH):
            chunk = numbers[i : i + _BATCH]
            got = self._call([("eth_getBlockByNumber", [hex(n), False]) for n in chunk])
            if not isinstance(got, list):
                return got
            for n, header in zip(chunk, got, strict=True):
                if header is None:
                    return ("lagging",)
                if not isinstance(header, dict):
                    return ("other", "a header is not an object")
                into[n] = header
        return None

    def _call(self, calls: list[tuple[str, list[Any]]]) -> list[Any] | tuple[Any, ...]:
        """The results of ``calls`` (one request, a batch if several), or the reply to send."""
        items = []
        for method, params in calls:
            self.ids += 1
            items.append({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params})
        body = orjson.dumps(items if len(items) > 1 else items[0])
        try:
            status, content = self.client.post(body)
        except PostError as exc:
            return ("other", str(exc))
        if status != 200:
            return ("other", f"HTTP {status}")
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            return ("other", "not JSON")
        answers = data if isinstance(data, list) else [data]
        by_id: dict[Any, Any] = {}
        for answer in answers:
            if not isinstance(answer, dict):
                return ("other", "not a JSON-RPC answer")
            error = answer.get("error")
            if error is not None:
                code = error.get("code") if isinstance(error, dict) else None
                message = error.get("message") if isinstance(error, dict) else None
                if (code is None or type(code) is int) and isinstance(message, str):
                    return ("error", code, message)
                return ("other", "a malformed JSON-RPC error")
            if "result" not in answer:
                return ("other", "an answer without result")
            by_id[answer.get("id")] = answer["result"]
        try:
            return [by_id[item["id"]] for item in items]
        except KeyError:
            return ("other", "an answer missing from the batch")


def child_main(
    conn: Connection,
    url: str,
    timeout: float,
    chain_id: int,
    routes: Sequence[DecodeRoute],
    keep_raw: bool,
) -> None:
    """The child process: answer each request, until the pipe closes."""
    deaf_to_sigint()  # the parent ends this process (see start_child)
    tune_gc()
    child = ChildFetcher(url, timeout, chain_id, routes, keep_raw)
    while True:
        try:
            args = marshal.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            reply = child.range(*args)
        except Exception as exc:  # anything else: report it, do not die silently
            text = f"the JSON-RPC log worker failed: {type(exc).__name__}: {exc}"
            reply = ("raise", "SourceError", text)
        try:
            conn.send_bytes(marshal.dumps(reply))
        except (BrokenPipeError, OSError):
            return  # the parent is gone
