"""Test helpers: build events, run handlers on them, and script chains to run projects against.

Unit-test handlers without a node or a database (see docs/testing.md)::

    h = HandlerHarness(project_dir, handlers=handlers)   # memory only
    await h.send(h.event("ERC20", "Transfer", {"from": a, "to": b, "value": 5}, block_number=1))
    assert h.get(handlers.Account, f"{token}-{b}").balance == 5

:func:`make_event`, :func:`make_log` and :func:`encode_log` build events
and logs from an ABI and parameter values, :func:`make_block` the block a
block handler gets; :func:`open_handler_harness`
puts PostgreSQL behind a harness; :func:`run_scripted` runs a whole
project against a :class:`ScriptedChain` and :func:`read_entities` reads
its tables back.

Script blocks, logs and reorgs on a :class:`ScriptedChain`, serve it with
:func:`open_rpc_server`, and point the code under test at ``server.url``.
Faults (HTTP errors, dropped connections, hangs, JSON-RPC errors) and
latency are scripted per method on the :class:`RpcServer`.

    chain = ScriptedChain(1, head=100, logs={42: [LogSpec(token, (TRANSFER, a, b), amount)]})
    async with open_rpc_server(chain) as server:
        server.fail("eth_getLogs", kind="http_429")
        ...  # run the indexer against server.url
        chain.reorg(3)

Several servers may serve one chain, each with its own faults, for a
project with several ``rpc`` URLs; ``server.lag(blocks)`` makes one a node
that lags (an older head, the blocks above it unknown).

Everything is deterministic; every wait is a ``trio.sleep``.

Under Trio's mock clock (pytest-trio's ``autojump_clock``), skip the
sockets: ``RpcServer(chain).transport()`` answers in-process, so virtual
time is exact (real sockets let the clock jump while a read is pending)::

    server = RpcServer(chain)
    async with httpx.AsyncClient(transport=server.transport()) as client:
        ...  # any http:// URL reaches the server
    # or the whole runtime:
    RunOptions(rpc_tuning={"client_options": {"transport": server.transport()}})

Database fixtures: :func:`start_embedded` starts (or reuses) the embedded
PostgreSQL that ``indexer run`` uses when no database is configured.

This package is public, like :mod:`indexer` itself; the framework's other
subpackages are internal.
"""

from ..persist import start_embedded
from ._chain import ZERO_HASH, Block, LogSpec, ScriptedChain
from ._events import encode_log, make_block, make_event, make_log
from ._harness import HandlerHarness, open_handler_harness, read_entities
from ._rpc_http import open_rpc_server
from ._rpc_server import FAILURE_KINDS, RpcServer
from ._scripted import run_scripted

__all__ = [
    "FAILURE_KINDS",
    "ZERO_HASH",
    "Block",
    "HandlerHarness",
    "LogSpec",
    "RpcServer",
    "ScriptedChain",
    "encode_log",
    "make_block",
    "make_event",
    "make_log",
    "open_handler_harness",
    "open_rpc_server",
    "read_entities",
    "run_scripted",
    "start_embedded",
]
