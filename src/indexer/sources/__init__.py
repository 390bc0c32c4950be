r"""Log sources: where logs come from (local files or a JSON-RPC node), routed and decoded.

INTERNAL: this package is the framework's own; its names may change in any
release.  Users configure sources in ``indexer.yaml``; tests script a node
with :mod:`indexer.testing`.

Every source hands the loop one shape: :class:`BlockRange`\ s whose logs are
already routed and decoded by a :class:`LogDecoder` (:data:`DecodedLog`
tuples), or a :class:`Reorg` notice.  Files are read and decoded in a child
process (:func:`open_file_reader`); a JSON-RPC node is followed by
:func:`feed_rpc` through :func:`open_rpc_client` (several nodes: through
:func:`open_rpc_pool`), which decodes each range before it hands it over.

Each name loads its module on first use: a spawned child imports only the
modules it runs (``_rpc_child.py``, the file reader's), not the fetchers.
"""

import typing as _typing

from .._lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:
    from ._decode import DecodeRoute as DecodeRoute
    from ._decode import LogDecoder as LogDecoder
    from ._decode import route_filter as route_filter
    from ._file import last_block_in_file as last_block_in_file
    from ._file import read_log_file as read_log_file
    from ._file import topic0s_in_file as topic0s_in_file
    from ._filter import LogFilter as LogFilter
    from ._log import BlockRange as BlockRange
    from ._log import DecodedLog as DecodedLog
    from ._log import RawLog as RawLog
    from ._log import Reorg as Reorg
    from ._process import open_file_reader as open_file_reader
    from ._read_stats import FileReadStats as FileReadStats
    from ._rpc import RpcClient as RpcClient
    from ._rpc import RpcError as RpcError
    from ._rpc import open_rpc_client as open_rpc_client
    from ._rpc_children import ChildOptions as ChildOptions
    from ._rpc_options import RpcSourceOptions as RpcSourceOptions
    from ._rpc_pool import RpcPool as RpcPool
    from ._rpc_pool import open_rpc_pool as open_rpc_pool
    from ._rpc_source import feed_rpc as feed_rpc
    from ._schedule import BlockSchedule as BlockSchedule

__all__ = [
    "BlockRange",
    "BlockSchedule",
    "ChildOptions",
    "DecodeRoute",
    "DecodedLog",
    "FileReadStats",
    "LogDecoder",
    "LogFilter",
    "RawLog",
    "Reorg",
    "RpcClient",
    "RpcError",
    "RpcPool",
    "RpcSourceOptions",
    "feed_rpc",
    "last_block_in_file",
    "open_file_reader",
    "open_rpc_client",
    "open_rpc_pool",
    "read_log_file",
    "route_filter",
    "topic0s_in_file",
]

_LAZY = {
    "BlockRange": "._log",
    "BlockSchedule": "._schedule",
    "ChildOptions": "._rpc_children",
    "DecodeRoute": "._decode",
    "DecodedLog": "._log",
    "FileReadStats": "._read_stats",
    "LogDecoder": "._decode",
    "LogFilter": "._filter",
    "RawLog": "._log",
    "Reorg": "._log",
    "RpcClient": "._rpc",
    "RpcError": "._rpc",
    "RpcPool": "._rpc_pool",
    "RpcSourceOptions": "._rpc_options",
    "feed_rpc": "._rpc_source",
    "last_block_in_file": "._file",
    "open_file_reader": "._process",
    "open_rpc_client": "._rpc",
    "open_rpc_pool": "._rpc_pool",
    "read_log_file": "._file",
    "route_filter": "._decode",
    "topic0s_in_file": "._file",
}


if not _typing.TYPE_CHECKING:  # mypy sees the imports above (and no catch-all attribute)
    __getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__)
