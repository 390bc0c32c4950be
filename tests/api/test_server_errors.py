"""What a client can get wrong, and a database that is down: status codes and messages."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

from indexer import load_config, load_handlers
from indexer.api import ApiLimits, ApiOptions, serve_api

from .._chains import make_rpc_project
from ._serving import serving, targets_of

if TYPE_CHECKING:
    from pathlib import Path


def _project(tmp_path: Path, schema: str) -> Path:
    return make_rpc_project(tmp_path, schema, "http://127.0.0.1:9/", end_block=10)


async def test_bad_requests_are_4xx_with_the_reason(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = _project(tmp_path, schema)
    limits = ApiLimits(max_body_bytes=2_000)
    async with serving(project, database_url, limits=limits) as client:
        r = await client.post("/graphql", content=b"{not json")
        assert r.status_code == 400
        assert "not valid JSON" in r.json()["errors"][0]["message"]
        r = await client.post("/graphql", json={"query": 5})
        assert r.status_code == 400
        assert "`query` must be a string" in r.json()["errors"][0]["message"]
        r = await client.post("/graphql", json={"query": "{ x }", "variables": [1]})
        assert r.status_code == 400
        assert "`variables`" in r.json()["errors"][0]["message"]
        r = await client.post(
            "/graphql", json={"query": "{ accounts { items { id } } " + " " * 3000}
        )
        assert r.status_code == 413
        assert "2000 bytes" in r.json()["errors"][0]["message"]
        r = await client.post("/sql", json=["SELECT 1"])
        assert r.status_code == 400
        assert "{sql, params}" in r.json()["error"]
        r = await client.post("/sql", json={"sql": "SELECT 1", "params": {"a": 1}})
        assert r.status_code == 400
        assert "`params`" in r.json()["error"]
        r = await client.post("/sql", json={"sql": "DELETE FROM account"})
        assert r.status_code == 400
        r = await client.get("/sql")
        assert r.status_code == 405
        r = await client.get("/nowhere")
        assert r.status_code == 404
        # Before any run: the schema has no tables; still a clear answer, not a 500.
        r = await client.get("/status")
        assert r.status_code == 200
        assert r.json()["chains"][0]["committed_block"] is None
        r = await client.post("/graphql", json={"query": "{ accounts { totalCount } }"})
        assert r.status_code == 503
        error = r.json()["errors"][0]
        assert "do not exist yet" in error["message"]
        assert "does not exist" in error["extensions"]["detail"]  # PostgreSQL's own words


async def test_a_body_too_large_is_refused_unread_and_the_connection_closed(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """A 413 comes before the body is read: the answer says the connection closes, and it
    does, so a client never sends its next request into a connection being closed."""
    limits = ApiLimits(max_body_bytes=2_000)
    async with serving(_project(tmp_path, schema), database_url, limits=limits) as client:
        host, port = str(client.base_url.host), client.base_url.port
        assert port is not None
        stream = await trio.open_tcp_stream(host, port)
        # The headers announce 5,000 bytes; only the first 100 are sent.
        await stream.send_all(
            b"POST /graphql HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000\r\n\r\n" + b" " * 100
        )
        got = b""
        with trio.fail_after(10):
            while data := await stream.receive_some(65536):
                got += data
        head = got.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 413")
        assert b"\r\nconnection: close" in head
        assert b"2000 bytes" in got
        await stream.aclose()
        # And through a keep-alive client: the next request gets a fresh connection.
        for _ in range(3):
            r = await client.post("/graphql", content=b" " * 3000)
            assert r.status_code == 413
            assert r.headers["connection"] == "close"
            assert (await client.get("/health")).status_code == 200


async def test_query_page_works_offline(tmp_path: Path, database_url: str, schema: str) -> None:
    async with serving(_project(tmp_path, schema), database_url) as client:
        r = await client.get("/graphql", headers={"accept": "text/html"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        # No asset from anywhere else: no absolute URL in src/href/import/fetch.
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", r.text)
        assert "@import" not in r.text
        assert "fetch(location.pathname" in r.text


async def test_cors_only_for_the_configured_origins(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = _project(tmp_path, schema)
    preflight = {
        "origin": "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    async with serving(project, database_url, cors_origins=("https://app.example",)) as client:
        r = await client.options("/graphql", headers=preflight)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = await client.options(
            "/graphql", headers={**preflight, "origin": "https://evil.example"}
        )
        assert r.status_code == 400
        assert "access-control-allow-origin" not in r.headers
    async with serving(project, database_url) as client:
        r = await client.get("/health", headers={"origin": "https://app.example"})
        assert "access-control-allow-origin" not in r.headers


async def test_database_down_is_503_without_credentials(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = _project(tmp_path, schema)
    config = load_config(project)
    handlers = load_handlers(config)
    # Nothing listens on port 9; the password must not appear anywhere.
    url = "postgresql://reader:s3cret-pw@127.0.0.1:9/nowhere"
    async with trio.open_nursery() as nursery:
        (base,) = await nursery.start(
            serve_api,
            url,
            config.schema,
            handlers.entities,
            targets_of(project),
            ApiOptions(port=0, read_retry_seconds=0.3),
        )
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            assert (await client.get("/health")).status_code == 200
            for method, path, body in (
                ("GET", "/ready", None),
                ("GET", "/status", None),
                ("POST", "/graphql", {"query": "{ accounts { totalCount } }"}),
                ("POST", "/sql", {"sql": "SELECT 1"}),
            ):
                r = await client.request(method, path, json=body)
                assert r.status_code == 503, (path, r.text)
                assert "s3cret" not in r.text
                assert "not available" in r.text
        nursery.cancel_scope.cancel()


async def test_port_in_use_is_a_clear_error(tmp_path: Path, database_url: str, schema: str) -> None:
    project = _project(tmp_path, schema)
    async with serving(project, database_url) as client:
        port = int(str(client.base_url).rsplit(":", 1)[1].strip("/"))
        config = load_config(project)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    serve_api,
                    database_url,
                    config.schema,
                    load_handlers(config).entities,
                    targets_of(project),
                    ApiOptions(port=port),
                )
        except BaseException as exc:
            from indexer import ConfigError

            leaf = exc
            while isinstance(leaf, BaseExceptionGroup):
                (leaf,) = leaf.exceptions
            assert isinstance(leaf, ConfigError)
            assert f"127.0.0.1:{port}" in str(leaf)
            assert "--port" in str(leaf)
        else:
            raise AssertionError("a second server on the same port started")


async def test_health_carries_the_indexing_process_view(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """``run --serve`` adds stalled chains to /health; it stays 200 (the process is up)."""
    project = _project(tmp_path, schema)
    config = load_config(project)
    view: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        (base,) = await nursery.start(
            functools.partial(
                serve_api,
                database_url,
                config.schema,
                load_handlers(config).entities,
                targets_of(project),
                ApiOptions(port=0),
                health=lambda: dict(view),
            )
        )
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
            view.update(status="stalled", stalled=[{"chain_id": 1, "waiting_on": "the sources"}])
            r = await client.get("/health")
            assert r.status_code == 200
            assert r.json() == {
                "status": "stalled",
                "stalled": [{"chain_id": 1, "waiting_on": "the sources"}],
            }
        nursery.cancel_scope.cancel()


async def _get_health(stream: trio.SocketStream) -> bytes:
    """One ``GET /health`` on a kept-alive connection: the whole answer, or b"" if closed."""
    await stream.send_all(b"GET /health HTTP/1.1\r\nHost: api\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got or len(got) < got.index(b"\r\n\r\n") + 4 + int(
        re.search(rb"content-length: (\d+)", got.lower()).group(1)  # type: ignore[union-attr]
    ):
        data = await stream.receive_some(65536)
        if not data:
            return got
        got += data
    return got


async def _settled() -> None:
    with trio.fail_after(10):
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)


@pytest.fixture
def jumpable_clock() -> trio.testing.MockClock:
    """Real time (the server's start-up and reads sleep and time out as usual), plus jumps."""
    return trio.testing.MockClock(rate=1.0)


async def test_an_idle_connection_outlives_a_load_balancers(
    tmp_path: Path, database_url: str, schema: str, jumpable_clock: trio.testing.MockClock
) -> None:
    """A load balancer keeps idle connections to its backends open for up to 60 s (AWS's
    ALB); a server that closes one first makes it answer a client with a 502.  Hypercorn's
    default is 5 s; the API keeps them for 75."""
    project = _project(tmp_path, schema)
    async with serving(project, database_url) as client:
        host, port = str(client.base_url.host), client.base_url.port
        assert port is not None
        stream = await trio.open_tcp_stream(host, port)
        assert (await _get_health(stream)).startswith(b"HTTP/1.1 200")
        await _settled()  # the server has recycled the connection: its idle timer runs
        jumpable_clock.jump(74)  # past Hypercorn's 5 s and a balancer's 60 s
        assert (await _get_health(stream)).startswith(b"HTTP/1.1 200")
        await _settled()
        jumpable_clock.jump(76)  # idle past the 75 s: the server ends it
        with trio.fail_after(10):
            assert await stream.receive_some(65536) == b""
        await stream.aclose()
