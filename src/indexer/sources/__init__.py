"""Log sources: where raw logs come from (local files or a JSON-RPC node)."""

from ._log import BlockRange as BlockRange
from ._log import RawLog as RawLog
from ._log import Reorg as Reorg

__all__ = ["BlockRange", "RawLog", "Reorg"]
