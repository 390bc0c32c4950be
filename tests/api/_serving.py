"""Serving the API in a test: a real Hypercorn server on a free loopback port."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import trio

from indexer import load_config, load_handlers
from indexer.api import ApiOptions, ChainTarget, serve_api

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


def targets_of(project: Path) -> list[ChainTarget]:
    config = load_config(project)
    return [
        ChainTarget(c.id, c.start_block, c.end_block, c.source.rpc is not None)
        for c in config.chains
    ]


@asynccontextmanager
async def serving(
    project: Path, database_url: str, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The project's API on 127.0.0.1:<free port>, and a client whose base URL is it."""
    config = load_config(project)
    handlers = load_handlers(config)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            serve_api,
            database_url,
            config.schema,
            handlers.entities,
            targets_of(project),
            ApiOptions(port=0, **options),
        )
        async with httpx.AsyncClient(base_url=binds[0], timeout=30) as client:
            yield client
        nursery.cancel_scope.cancel()


async def gql(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    """POST a query; fail the test on HTTP or GraphQL errors; return ``data``."""
    r = await client.post("/graphql", json={"query": query, "variables": variables or None})
    assert r.status_code == 200, r.text
    body = orjson.loads(r.content)
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


class SseReader:
    """Collects a ``/events`` stream's events as (kind, chain_id, block)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []
        self.connected = trio.Event()
        self._arrived = trio.Event()

    async def wait_for(self, event: tuple[str, int, int]) -> None:
        """Until ``event`` is the latest event received."""
        with trio.fail_after(10):
            while not self.events or self.events[-1] != event:
                await self._arrived.wait()
                self._arrived = trio.Event()

    async def run(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", "/events", timeout=None) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            kind = None
            async for line in r.aiter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("event: "):
                    kind = line[len("event: ") :]
                elif line.startswith("data: "):
                    data = orjson.loads(line[len("data: ") :])
                    assert kind is not None
                    self.events.append((kind, data["chain_id"], data["block"]))
                    self._arrived.set()
                    kind = None
