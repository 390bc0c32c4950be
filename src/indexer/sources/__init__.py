"""Log sources: where logs come from (local files or a JSON-RPC node), routed and decoded."""

from ._decode import DecodeRoute as DecodeRoute
from ._decode import LogDecoder as LogDecoder
from ._log import BlockRange as BlockRange
from ._log import DecodedLog as DecodedLog
from ._log import RawLog as RawLog
from ._log import Reorg as Reorg

__all__ = ["BlockRange", "DecodeRoute", "DecodedLog", "LogDecoder", "RawLog", "Reorg"]
