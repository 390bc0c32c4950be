"""Log sources: where raw logs come from (files now, JSON-RPC later)."""

from ._log import BlockRange as BlockRange
from ._log import RawLog as RawLog

__all__ = ["BlockRange", "RawLog"]
