"""Fetching a factory's children over JSON-RPC: by address while few, by topic past a limit.

The fetcher (``_rpc_source.py``) first asks for the logs of the listed
contracts, then for the children's, through :class:`ChildFetch`:

* every child contract's addresses are those registered when the range is
  fetched (``known``, the runtime's registrations) plus those the range's
  own factory events register, found by decoding them here: a child
  created inside the range is fetched for the whole range, so its
  constructor's logs (earlier in its creation block) are there too;
* while a contract has at most ``limit`` addresses they go into
  ``eth_getLogs`` ``address`` lists of ``chunk`` each; past it, one query by
  its topic0s alone (no address), and the processing loop keeps the
  registered children's logs (it filters every child log anyway);
* the children's own logs may register grandchildren: repeated until no
  address is new.

What a range was fetched with travels with it (``BlockRange.fetched``): a
child the processing loop registers later with ``ctx.add_contract`` (the
fetcher cannot foresee those) is fetched again for that range through
``refetch`` before the range's later logs are processed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import SourceError
from ._rpc_ranges import raw_logs

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence
    from contextlib import AbstractAsyncContextManager

    from ._decode import DecodeRoute, LogDecoder
    from ._log import DecodedLog
    from ._rpc import RpcClient
    from ._rpc_fields import FieldFetcher
    from ._rpc_pool import RpcPool

__all__ = ["ChildFetch", "ChildOptions"]


class ChildOptions:
    """How a chain's children are fetched.

    Args:
        registers: per route, the (child contract, address parameter) pairs
            its event registers.
        known: child contract name -> the addresses registered now (live).
        limit: most addresses fetched by address per contract; past it, by topic.
        chunk: addresses per ``eth_getLogs`` call.
    """

    __slots__ = ("chunk", "known", "limit", "registers")

    def __init__(
        self,
        registers: Sequence[tuple[tuple[str, str], ...]],
        known: Callable[[str], Collection[str]],
        *,
        limit: int = 1_000,
        chunk: int = 500,
    ) -> None:
        self.registers = tuple(registers)
        self.known = known
        self.limit = limit
        self.chunk = chunk


class ChildFetch:
    """The children's logs of one range, and refetches for the processing loop."""

    def __init__(
        self,
        client: RpcClient | RpcPool,
        decoder: LogDecoder,
        options: ChildOptions,
        where: str,
        open_client: Callable[[], AbstractAsyncContextManager[RpcClient | RpcPool]],
    ) -> None:
        self.client = client
        # A refetch comes from the processing loop, which may run after the
        # fetcher (and its client) ended: it opens a client of its own.
        self.open_client = open_client
        self.decoder = decoder
        self.o = options
        self.where = where
        routes: Sequence[DecodeRoute] = decoder.routes
        # child contract -> its routes' topic0s
        self.topics: dict[str, list[str]] = {}
        for r in routes:
            if r.child:
                self.topics.setdefault(r.contract, [])
                if r.event.topic0 not in self.topics[r.contract]:
                    self.topics[r.contract].append(r.event.topic0)
        # topic0s whose logs can register children (only those are decoded here)
        self.registering = frozenset(
            r.event.topic0 for r, pairs in zip(routes, options.registers, strict=True) if pairs
        )
        self.calls = 0
        # The chain's selected transaction and block fields, for refetched
        # logs too (set by the fetcher, which owns it).
        self.fields: FieldFetcher | None = None

    async def fetch(
        self, first: int, last: int, base: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, frozenset[str] | None]]:
        """The children's logs of ``first..last`` given the listed contracts' ``base`` logs.

        Returns the logs and, per child contract, the addresses fetched
        (None: by topic, so every address).
        """
        fetched: dict[str, set[str] | None] = {name: set() for name in self.topics}
        wanted = {name: set(self.o.known(name)) for name in self.topics}
        out: list[dict[str, Any]] = []
        # A listed contract may share a topic0 with a child contract: a query by
        # topic returns its logs again.
        seen = {(lg.get("blockNumber"), lg.get("logIndex")) for lg in base}
        new = base
        while True:
            for name, address in self._registrations(new):
                if name in wanted:
                    wanted[name].add(address)
            new = []
            for name, topics in self.topics.items():
                done = fetched[name]
                if done is None:
                    continue
                missing = wanted[name] - done
                if not missing:
                    continue
                if len(wanted[name]) > self.o.limit:
                    logs = await self._get(first, last, None, topics)
                    # Already fetched by address: keep one copy.
                    fetched[name] = None
                else:
                    logs = []
                    ordered = sorted(missing)
                    for i in range(0, len(ordered), self.o.chunk):
                        logs += await self._get(first, last, ordered[i : i + self.o.chunk], topics)
                    done |= missing
                for lg in logs:
                    key = (lg.get("blockNumber"), lg.get("logIndex"))
                    if key not in seen:
                        seen.add(key)
                        new.append(lg)
            if not new:
                break
            out += new
        return out, {k: None if v is None else frozenset(v) for k, v in fetched.items()}

    async def refetch(
        self, contract: str, addresses: Sequence[str], first: int, last: int
    ) -> list[DecodedLog]:
        """The logs of ``addresses`` as ``contract`` children in ``first..last``, decoded."""
        topics = self.topics[contract]
        logs: list[dict[str, Any]] = []
        ordered = sorted(addresses)
        async with self.open_client() as client:
            for i in range(0, len(ordered), self.o.chunk):
                self.calls += 1
                logs += await client.get_logs(
                    first, last, addresses=ordered[i : i + self.o.chunk], topic0s=topics
                )
            need = sorted(
                {int(lg["blockNumber"], 16) for lg in logs if lg.get("blockTimestamp") is None}
            )
            headers = await client.get_blocks(need) if need else []
            fetched = None
            if self.fields is not None and self.fields.active and logs:
                fetched = await self.fields.fetch(client, first, last, logs, None)
                if fetched is None:
                    raise SourceError(
                        f"{self.where}: blocks {first}..{last} changed (a reorg) while the logs of "
                        f"children registered in them were fetched again, with their selected "
                        "fields; nothing of these blocks was committed: run again to resume"
                    )
        by_number = {n: h for n, h in zip(need, headers, strict=True) if h is not None}
        raws = raw_logs(self.where, logs, by_number)
        return self.decoder.decode(raws, None if fetched is None else fetched.attach)

    async def _get(
        self, first: int, last: int, addresses: Sequence[str] | None, topics: Sequence[str]
    ) -> list[dict[str, Any]]:
        self.calls += 1
        return await self.client.get_logs(first, last, addresses=addresses, topic0s=topics)

    def _registrations(self, logs: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
        """(child contract, address) of every registration the logs may make."""
        candidates = [
            lg
            for lg in logs
            if lg.get("topics") and str(lg["topics"][0]).lower() in self.registering
        ]
        if not candidates:
            return []
        raws = raw_logs(self.where, candidates, _NoHeaders())
        out = []
        for route, fields, _raw in self.decoder.decode(raws):
            params = fields[0]
            if type(params) is str:
                continue  # undecodable: registers nothing
            for name, param in self.o.registers[route]:
                out.append((name, str(params[param]).lower()))
        return out


class _NoHeaders(dict[int, dict[str, Any]]):
    """Timestamps do not matter for finding registrations: any block reads as time 0."""

    def __missing__(self, key: int) -> dict[str, Any]:
        return {"timestamp": "0x0"}
