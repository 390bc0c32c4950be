"""The load generator: a separate process, so the server under test keeps its own interpreter.

    python bench/_api/loadgen.py SPEC.json OUT.json

It imports nothing from bench/ or the framework (only trio and orjson), builds every
request's bytes before it starts, speaks HTTP/1.1 keep-alive by hand (write the request,
read the head, then Content-Length bytes), and keeps every per-request cost to a few
byte searches, so that on a 2-core machine it takes as little CPU from the server as it
can.  Two modes (``spec["mode"]``):

* ``closed``: each scenario runs N clients, each on its own connection, each sending
  its next request as soon as the previous answer is in; after ``warmup`` seconds the
  answers completed within the next ``seconds`` are counted and timed.
* ``open``: requests paced at ``rate`` per second over a few connections, whatever the
  answers' speed (a late answer does not delay the next request).  Latency is measured
  from the time a request was due, so a queue in front of the server is counted.  It
  prints ``ready``, starts on a ``go PORT [SERVER_PID]`` line on stdin and stops on
  ``stop`` or EOF.  With ``open["toggle"] = {"epoch": T, "seconds": W}`` it sends only
  in the odd windows of W wall-clock seconds counted from the Unix time T (the
  toggle benchmark, ``_api/toggle.py``, reads the run's progress in the same windows).
  With ``open["min_answers"] = N`` it goes on after ``stop`` until N answers are in, for
  at most a minute (smoke runs, whose check needs an answer).

Every answer must be 200 without ``"errors"``; every ``verify_every``-th is also
parsed and checked (the by-id answer is the id asked, or null where allowed; a page
is at most ``limit`` items, ordered by balance descending, all positive, all of the
token asked, and ``totalCount`` is at least the items).  A broken server counts errors;
it cannot look fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio

_MAX_ERROR_SAMPLES = 5


class _Closed(Exception):
    """The server closed the connection."""


@dataclass
class _Kind:
    """One kind of query: its pre-encoded requests and how to check an answer."""

    name: str
    requests: list[bytes]
    expected: list[Any]
    check: str
    field: str
    allow_null: bool
    limit: int


def _build_kind(name: str, spec: dict[str, Any], host: str, port: int) -> _Kind:
    if spec["check"] == "health":  # GET /health: the HTTP server's own cost, no query
        request = f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        return _Kind(name, [request], [None], "health", "status", False, 0)
    head = f"POST /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    requests, expected = [], []
    for variables in spec["variables"]:
        body = orjson.dumps({"query": spec["query"], "variables": variables})
        requests.append(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        expected.append(variables["id"] if spec["check"] == "by_id" else variables["t"])
    return _Kind(
        name,
        requests,
        expected,
        spec["check"],
        spec["field"],
        spec.get("allow_null", False),
        spec.get("limit", 0),
    )


def _wrong(kind: _Kind, expected: Any, body: bytes) -> str | None:
    """Why a (200, no errors) answer is wrong, or None."""
    if kind.check == "health":
        return None if orjson.loads(body).get("status") == "ok" else "not ok"
    data = orjson.loads(body).get("data") or {}
    got: Any = data.get(kind.field)
    if kind.check == "by_id":
        if got is None:
            return None if kind.allow_null else f"no {kind.field} with id {expected!r}"
        return None if got.get("id") == expected else f"asked {expected!r}, got {got.get('id')!r}"
    items = got["items"]
    balances = [int(i["balance"]) for i in items]
    if len(items) > kind.limit or got["totalCount"] < len(items):
        return f"{len(items)} items, totalCount {got['totalCount']}"
    if balances != sorted(balances, reverse=True) or any(b <= 0 for b in balances):
        return "items not ordered by positive balance, descending"
    if any(not i["id"].startswith(expected + "-") for i in items):
        return f"an item of another token than {expected!r}"
    if got["pageInfo"]["hasNextPage"] != (got["totalCount"] > len(items)):
        return "hasNextPage disagrees with totalCount"
    return None


@dataclass
class _Tally:
    """What one scenario (or one kind in the open loop) saw."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    verified: int = 0
    reconnects: int = 0
    answers: int = 0
    samples: list[str] = field(default_factory=list)

    def error(self, why: str) -> None:
        self.errors += 1
        if len(self.samples) < _MAX_ERROR_SAMPLES:
            self.samples.append(why[:300])


class _Conn:
    """One keep-alive connection and its read buffer."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.stream: trio.SocketStream | None = None
        self.buf = bytearray()

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send ``request``; return (status, body, whether the server closes the connection)."""
        if self.stream is None:
            self.stream = await trio.open_tcp_stream(self.host, self.port)  # TCP_NODELAY set
            self.buf.clear()
        stream, buf = self.stream, self.buf
        await stream.send_all(request)
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if not (data := await stream.receive_some(65536)):
                raise _Closed
            buf += data
        head = bytes(buf[:end]).lower()
        i = head.find(b"\r\ncontent-length:")
        if i < 0:
            raise ValueError(f"no Content-Length in {head[:200]!r}")
        j = head.find(b"\r\n", i + 2)
        total = end + 4 + int(head[i + 17 : j if j >= 0 else len(head)])
        while len(buf) < total:
            if not (data := await stream.receive_some(65536)):
                raise _Closed
            buf += data
        body = bytes(buf[end + 4 : total])
        del buf[:total]
        # Hypercorn closes a keep-alive connection after keep_alive_max_requests answers.
        return int(head[9:12]), body, b"\r\nconnection: close" in head

    async def close(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.aclose()


async def _one(conn: _Conn, kind: _Kind, i: int, tally: _Tally, verify: bool) -> tuple[bool, float]:
    """One request of ``kind`` (``i``-th); (answered correctly, time the answer was in)."""
    try:
        status, body, closing = await conn.exchange(kind.requests[i])
    except (OSError, trio.BrokenResourceError, _Closed, ValueError) as exc:
        tally.error(f"{kind.name}: {type(exc).__name__}: {exc}")
        tally.reconnects += 1
        await conn.close()
        return False, trio.current_time()
    done = trio.current_time()
    if closing:
        tally.reconnects += 1
        await conn.close()
    if status != 200 or b'"errors"' in body:
        tally.error(f"{kind.name}: HTTP {status}: {body[:200].decode(errors='replace')}")
        return False, done
    if verify:
        tally.verified += 1
        try:
            why = _wrong(kind, kind.expected[i], body)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            why = f"unexpected answer shape ({type(exc).__name__}: {exc}): {body[:200]!r}"
        if why is not None:
            tally.error(f"{kind.name}: wrong answer: {why}")
            return False, done
    return True, done


# -- CPU accounting -----------------------------------------------------------


def _tree_cpu(pid: int, tree: bool) -> int:
    """Clock ticks of ``pid``, and of its children if ``tree`` (``serve --workers N`` forks N - 1)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if not tree:
        return ticks
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        children = []
    for child in children:
        # A child that ended between the two reads counts no more.
        with contextlib.suppress(OSError, ValueError, IndexError):
            ticks += _tree_cpu(child, tree)
    return ticks


def _cpu_sample(server_pid: int | None, tree: bool = False) -> dict[str, float]:
    """Seconds of CPU so far: this process, the server process, and the machine (busy, total)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {"self": usage.ru_utime + usage.ru_stime}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:9]]
        out["machine_total"] = sum(cpu) / tick
        out["machine_busy"] = (sum(cpu) - cpu[3] - cpu[4]) / tick  # minus idle, iowait
        if server_pid is not None:
            out["server"] = _tree_cpu(server_pid, tree) / tick
    except (OSError, ValueError, IndexError):
        pass
    return out


def _cpu_shares(a: dict[str, float], b: dict[str, float], wall: float) -> dict[str, float | None]:
    """CPU use between two samples, in % of one core (machine: % of all cores busy)."""

    def pct(key: str) -> float | None:
        return 100 * (b[key] - a[key]) / wall if key in a and key in b and wall > 0 else None

    total = b.get("machine_total", 0.0) - a.get("machine_total", 0.0)
    busy = b.get("machine_busy", 0.0) - a.get("machine_busy", 0.0)
    return {
        "generator_percent_of_a_core": pct("self"),
        "server_percent_of_a_core": pct("server"),
        "machine_busy_percent": 100 * busy / total if total > 0 else None,
    }


def _latency_ms(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    s = sorted(values)

    def q(p: float) -> float:
        return 1000 * s[max(0, min(len(s) - 1, int(p * len(s) + 0.999999) - 1))]

    return {
        "p50": q(0.50),
        "p90": q(0.90),
        "p99": q(0.99),
        "max": 1000 * s[-1],
        "mean": 1000 * sum(s) / len(s),
    }


def _report(tally: _Tally, seconds: float) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "requests": len(tally.latencies),
        "requests_per_second": len(tally.latencies) / seconds if seconds > 0 else None,
        "latency_ms": _latency_ms(tally.latencies),
        "answers": tally.answers,
        "errors": tally.errors,
        "error_samples": tally.samples,
        "verified": tally.verified,
        "reconnects": tally.reconnects,
    }


# -- closed loop ----------------------------------------------------------------


async def _closed_scenario(spec: dict[str, Any], sc: dict[str, Any], kind: _Kind) -> dict[str, Any]:
    """One closed-loop scenario: ``clients`` connections, each one request at a time."""
    clients, every = sc["clients"], spec["verify_every"]
    tally = _Tally()
    conns = [_Conn(spec["host"], spec["port"]) for _ in range(clients)]
    start = trio.current_time()
    window = (start + sc["warmup"], start + sc["warmup"] + sc["seconds"])
    cpu: list[dict[str, float]] = []

    async def client(c: int, conn: _Conn) -> None:
        n = len(kind.requests)
        i = c * n // clients  # clients start at spread-out places of the shuffled list
        while True:
            i = (i + 1) % n
            sent = trio.current_time()
            if sent >= window[1]:
                return
            tally.answers += 1
            ok, done = await _one(conn, kind, i, tally, tally.answers % every == 0)
            if ok and sent >= window[0] and done <= window[1]:
                tally.latencies.append(done - sent)

    async def sample_cpu() -> None:
        for t in window:
            await trio.sleep_until(t)
            cpu.append(_cpu_sample(spec.get("server_pid"), spec.get("server_tree", False)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample_cpu)
        for c, conn in enumerate(conns):
            nursery.start_soon(client, c, conn)
    for conn in conns:
        await conn.close()
    result: dict[str, Any] = {"name": sc["name"], "kind": sc["kind"], "clients": clients}
    result.update(_report(tally, sc["seconds"]))
    result["cpu"] = _cpu_shares(cpu[0], cpu[1], sc["seconds"]) if len(cpu) == 2 else None
    return result


# -- open loop ------------------------------------------------------------------


async def _line(stdin: trio.abc.ReceiveStream, buf: bytearray) -> str:
    while b"\n" not in buf:
        if not (data := await stdin.receive_some(4096)):
            return ""
        buf += data
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line.decode().strip()


async def _open(spec: dict[str, Any]) -> dict[str, Any]:
    stdin = trio.lowlevel.FdStream(os.dup(0))
    buf = bytearray()
    print("ready", flush=True)
    words = (await _line(stdin, buf)).split()
    if len(words) not in (2, 3) or words[0] != "go":
        return {"error": f"expected `go PORT [SERVER_PID]` on stdin, got {words!r}"}
    port = int(words[1])
    if len(words) == 3:
        spec["server_pid"] = int(words[2])
    kinds = {name: _build_kind(name, k, spec["host"], port) for name, k in spec["kinds"].items()}
    op = spec["open"]
    mix = [kinds[name] for name in op["mix"]]
    tallies = {k.name: _Tally() for k in mix}
    every = spec["verify_every"]
    send, receive = trio.open_memory_channel[tuple[float, _Kind, int]](op["max_backlog"])
    dropped = 0
    need, answered = op.get("min_answers", 0), trio.Event()
    latencies = [t.latencies for t in tallies.values()]
    if need <= 0:
        answered.set()

    async def worker(conn: _Conn) -> None:
        async for due, kind, i in receive:
            tally = tallies[kind.name]
            tally.answers += 1
            ok, done = await _one(conn, kind, i, tally, tally.answers % every == 0)
            if ok:
                tally.latencies.append(done - due)
                if not answered.is_set() and sum(map(len, latencies)) >= need:
                    answered.set()

    toggle = op.get("toggle")

    async def pacer() -> None:
        nonlocal dropped
        start, k = trio.current_time(), 0
        while True:
            due = start + k / op["rate"]
            await trio.sleep_until(due)
            if (
                toggle is not None
                and int((time.time() - toggle["epoch"]) / toggle["seconds"]) % 2 == 0
            ):
                k += 1
                continue  # an off window: the pace goes on, nothing is sent
            kind = mix[k % len(mix)]
            try:
                send.send_nowait((due, kind, (k // len(mix)) % len(kind.requests)))
            except trio.WouldBlock:
                dropped += 1  # bounded: past max_backlog queued requests, skip one
            k += 1

    conns = [_Conn(spec["host"], port) for _ in range(op["connections"])]
    cpu0 = _cpu_sample(spec.get("server_pid"), spec.get("server_tree", False))
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for conn in conns:
            nursery.start_soon(worker, conn)
        nursery.start_soon(pacer)
        while (await _line(stdin, buf)) not in ("stop", ""):
            pass
        with trio.move_on_after(60):
            await answered.wait()
        nursery.cancel_scope.cancel()
    elapsed = trio.current_time() - started
    cpu = _cpu_shares(
        cpu0, _cpu_sample(spec.get("server_pid"), spec.get("server_tree", False)), elapsed
    )
    for conn in conns:
        with trio.CancelScope(shield=True):
            await conn.close()
    done = sum(len(t.latencies) for t in tallies.values())
    return {
        "rate_asked": op["rate"],
        "connections": op["connections"],
        "seconds": elapsed,
        "requests": done,
        "requests_per_second": done / elapsed if elapsed > 0 else None,
        "dropped": dropped,
        "max_backlog": op["max_backlog"],
        "errors": sum(t.errors for t in tallies.values()),
        "kinds": {name: _report(t, elapsed) for name, t in tallies.items()},
        "cpu": cpu,
    }


async def _main(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["mode"] == "open":
        return await _open(spec)
    kinds = {
        name: _build_kind(name, k, spec["host"], spec["port"]) for name, k in spec["kinds"].items()
    }
    return {
        "scenarios": [
            await _closed_scenario(spec, sc, kinds[sc["kind"]]) for sc in spec["scenarios"]
        ]
    }


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    result = trio.run(_main, spec)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
