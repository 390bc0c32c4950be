"""Test helpers: a scripted chain served over JSON-RPC, to test indexers against.

Script blocks, logs and reorgs on a :class:`ScriptedChain`, serve it with
:func:`open_rpc_server`, and point the code under test at ``server.url``.
Faults (HTTP errors, dropped connections, hangs, JSON-RPC errors) and
latency are scripted per method on the :class:`RpcServer`.

    chain = ScriptedChain(1, head=100, logs={42: [LogSpec(token, (TRANSFER, a, b), amount)]})
    async with open_rpc_server(chain) as server:
        server.fail("eth_getLogs", kind="http_429")
        ...  # run the indexer against server.url
        chain.reorg(3)

Everything is deterministic; every wait is a ``trio.sleep``.

Under Trio's mock clock (pytest-trio's ``autojump_clock``), skip the
sockets: ``RpcServer(chain).transport()`` answers in-process, so virtual
time is exact (real sockets let the clock jump while a read is pending)::

    server = RpcServer(chain)
    async with open_rpc_client("http://scripted/", transport=server.transport()) as client:
        ...
    # or the whole runtime:
    RunOptions(rpc_tuning={"client_options": {"transport": server.transport()}})
"""

from ._chain import ZERO_HASH, Block, LogSpec, ScriptedChain
from ._rpc_server import FAILURE_KINDS, RpcServer, open_rpc_server

__all__ = [
    "FAILURE_KINDS",
    "ZERO_HASH",
    "Block",
    "LogSpec",
    "RpcServer",
    "ScriptedChain",
    "open_rpc_server",
]
