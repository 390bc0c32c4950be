"""Running a whole project against a :class:`ScriptedChain`, in-process."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .._errors import ConfigError
from ..config import SourceConfig
from ..runtime import RunOptions, RunSummary, run_project
from ._harness import Project, _handler_set, _load_project
from ._rpc_server import RpcServer

if TYPE_CHECKING:
    from types import ModuleType

    from ._chain import ScriptedChain

__all__ = ["run_scripted"]

_SCRIPTED_URL = "http://scripted.invalid/"  # never dialled: the in-process transport answers


async def run_scripted(
    project: Project,
    chain: ScriptedChain | RpcServer,
    *,
    database_url: str,
    schema: str | None = None,
    handlers: ModuleType | None = None,
    start_block: int | None = None,
    end_block: int | None = None,
    max_reorg_depth: int | None = None,
    poll_interval: float = 1.0,
    options: RunOptions | None = None,
) -> RunSummary:
    """Run the project against a scripted chain, as ``indexer run`` would, until ``end_block``.

    The project's chain with the scripted chain's id gets a JSON-RPC source
    answered in-process by ``RpcServer(chain).transport()`` (pass an
    :class:`RpcServer` to script failures and latency on it); the project's
    other chains are left out.  Nothing waits on a socket, so the run works
    under Trio's mock clock (``autojump_clock``).  A later call on the same
    schema resumes, and rolls back first if the chain reorganised below
    what it had indexed.

    Args:
        project: The project directory or ``ProjectConfig``.
        chain: The chain, or a server over it.
        database_url: The PostgreSQL to write to.
        schema: Overrides the project's ``schema`` (use one per test).
        handlers: The handlers module to run (default: import the project's).
        start_block: Default: the project's.
        end_block: The run ends once this block is committed (default: the
            chain's head now).  Above the head, the run follows the chain as
            it grows (``RpcServer.produce_blocks`` in a task beside it).
        max_reorg_depth: Default: the project's.
        poll_interval: Seconds between head polls while following the chain.
        options: Run options; ``database_url``, ``handle_signals`` (off) and
            the transport are set here.  Default: ``RunOptions(write_interval=0)``.

    Returns:
        The run's summary (``summary.rollbacks`` lists the reorgs rolled back).

    Raises:
        ValueError: The project has no chain with the scripted chain's id.
    """
    server = chain if isinstance(chain, RpcServer) else RpcServer(chain)
    scripted = server.chain
    config = _load_project(project, schema)
    base = next((c for c in config.chains if c.id == scripted.chain_id), None)
    if base is None:
        ids = [c.id for c in config.chains]
        raise ValueError(f"the project has no chain {scripted.chain_id} (its chains: {ids})")
    followed = dataclasses.replace(
        base,
        start_block=base.start_block if start_block is None else start_block,
        end_block=scripted.head if end_block is None else end_block,
        max_reorg_depth=base.max_reorg_depth if max_reorg_depth is None else max_reorg_depth,
        source=SourceConfig(rpc=_SCRIPTED_URL, poll_interval=poll_interval),
    )
    others = len(config.chains) > 1
    config = dataclasses.replace(config, chains=(followed,))
    try:
        handler_set = _handler_set(config, handlers)
    except ConfigError as exc:
        if not others:
            raise
        raise ConfigError(f"{exc} (run_scripted runs chain {scripted.chain_id} only)") from exc
    opts = options if options is not None else RunOptions(write_interval=0.0)
    tuning = dict(opts.rpc_tuning)
    tuning["client_options"] = {**tuning.get("client_options", {}), "transport": server.transport()}
    opts = dataclasses.replace(
        opts, database_url=database_url, handle_signals=False, rpc_tuning=tuning
    )
    return await run_project(config, handler_set, opts)
