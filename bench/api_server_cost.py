"""What one HTTP request costs the serving process, by server stack, at a paced rate.

    python bench/api_server_cost.py [--rate 200] [--seconds 10] [--runs 3]

The same request (``GET /health``, a 15-byte JSON answer, keep-alive) is sent at
``--rate`` requests/s over 16 connections to four servers in turn, each a process
of its own on a free loopback port:

* ``socket``: a Trio task per connection that finds the end of each request's head
  and writes canned response bytes (no HTTP library: the floor of Trio's I/O);
* ``hypercorn``: Hypercorn's Trio worker with a bare ASGI callable;
* ``hypercorn+starlette``: the same with a Starlette route;
* ``lean+starlette``: the same with Hypercorn's connection handler replaced by the
  API's ``LeanConnection`` (``api/_transport.py``): the API's stack.

The figure is the server process's CPU time (user + system, from /proc) over the
measured seconds divided by the requests answered.  Runs rotate the order.  Output:
``bench/results/api_server_cost.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio
from _machine import machine_info
from _paths import RESULTS

from indexer.api._serve import KEEP_ALIVE_SECONDS

REQUEST = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"
BODY = b'{"status":"ok"}'
STACKS = ("socket", "hypercorn", "hypercorn+starlette", "lean+starlette")


def _serve(stack: str, port: int) -> None:
    """The server side (``--serve STACK PORT``), run in a process of its own."""
    if stack == "socket":
        response = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY)
        )

        async def handle(stream: trio.SocketStream) -> None:
            buf = bytearray()
            while data := await stream.receive_some(65536):
                buf += data
                while (end := buf.find(b"\r\n\r\n")) >= 0:
                    del buf[: end + 4]
                    await stream.send_all(response)

        trio.run(trio.serve_tcp, handle, port)
        return
    from hypercorn.config import Config
    from hypercorn.trio import serve

    async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", b"15")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})

    app: Any = bare
    if stack == "lean+starlette":
        from indexer.api._transport import install

        if not install():
            raise RuntimeError("this Hypercorn is not the one LeanConnection was written for")
    if stack.endswith("+starlette"):
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        async def health(_request: Any) -> Response:
            return Response(BODY, media_type="application/json")

        app = Starlette(routes=[Route("/health", health)])
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.keep_alive_timeout = KEEP_ALIVE_SECONDS  # as the API's
    trio.run(serve, app, config)


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


async def _load(port: int, pid: int, rate: float, seconds: float) -> dict[str, float]:
    send, receive = trio.open_memory_channel[int](int(2 * rate))
    answered = 0

    async def client() -> None:
        nonlocal answered
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        buf = bytearray()
        async for _ in receive:
            await stream.send_all(REQUEST)
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = bytes(buf[:end]).lower()
                    i = head.find(b"content-length:")
                    j = head.find(b"\r\n", i)
                    total = end + 4 + int(head[i + 15 : j if j >= 0 else len(head)])
                    if len(buf) >= total:
                        del buf[:total]
                        break
                buf += await stream.receive_some(65536)
            answered += 1

    async with trio.open_nursery() as nursery:
        for _ in range(16):
            nursery.start_soon(client)
        await trio.sleep(1.0)  # connected and warm
        ticks0, start, k = _cpu_ticks(pid), trio.current_time(), 0
        answered0 = answered
        while trio.current_time() - start < seconds:
            await trio.sleep_until(start + k / rate)
            send.send_nowait(k)
            k += 1
        await trio.sleep(0.5)  # the last answers
        ticks, wall = _cpu_ticks(pid) - ticks0, trio.current_time() - start
        nursery.cancel_scope.cancel()
    n = answered - answered0
    cpu = ticks / os.sysconf("SC_CLK_TCK")
    return {
        "asked": k,
        "requests": n,
        "cpu_seconds": cpu,
        "ms_per_request": 1000 * cpu / max(1, n),
        "wall": wall,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _measure(stack: str, rate: float, seconds: float) -> dict[str, float]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", stack, str(port)], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{stack}: the server did not start") from None
                time.sleep(0.1)
        return trio.run(_load, port, server.pid, rate, seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--serve", nargs=2, metavar=("STACK", "PORT"), help=argparse.SUPPRESS)
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.serve:
        _serve(args.serve[0], int(args.serve[1]))
        return 0
    runs: list[dict[str, Any]] = []
    for r in range(args.runs):
        k = r % len(STACKS)
        for stack in STACKS[k:] + STACKS[:k]:
            got = _measure(stack, args.rate, args.seconds)
            runs.append({"stack": stack, "run": r + 1, **got})
            print(f"run {r + 1} {stack}: {got['ms_per_request']:.3f} ms/request", flush=True)
    summary = {
        stack: statistics.median(x["ms_per_request"] for x in runs if x["stack"] == stack)
        for stack in STACKS
    }
    results = {
        "command": "python bench/api_server_cost.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info(None),
        "rate": args.rate,
        "seconds": args.seconds,
        "runs": runs,
        "median_ms_per_request": summary,
    }
    lines = [
        "# What one HTTP request costs the serving process",
        "",
        f"Command: `{results['command']}`. `GET /health` at {args.rate:g} requests/s over 16 "
        f"keep-alive connections, {args.seconds:g} s per run, {args.runs} runs per stack; the "
        "server process's CPU (user + system) per request answered, median (min–max).",
        "",
        "| stack | CPU ms per request |",
        "|---|---:|",
    ]
    for stack in STACKS:
        mine = [x["ms_per_request"] for x in runs if x["stack"] == stack]
        lines.append(f"| {stack} | {summary[stack]:.3f} ({min(mine):.3f}–{max(mine):.3f}) |")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "api_server_cost.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.results_dir / "api_server_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
