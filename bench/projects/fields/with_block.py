"""``handlers.py`` plus a block handler every block: the ``block_handler`` variant.

The handler keeps one row up to date (the newest block's number and
timestamp), like a snapshot that is overwritten; the cost measured is the
framework's (a header per block, a checkpoint per block, the call).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from indexer import Block, Context, Entity, on_block


def _load() -> Any:
    path = Path(__file__).resolve().with_name("handlers.py")
    spec = importlib.util.spec_from_file_location("bench_fields_handlers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_log_handlers = _load()
Holder = _log_handlers.Holder
transfer = _log_handlers.transfer


class Head(Entity):
    id: str
    number: int
    timestamp: int


@on_block(chain=1, every=1)
async def each_block(block: Block, ctx: Context) -> None:
    ctx.set(Head(id="head", number=block.number, timestamp=block.timestamp))
