"""One node of an :class:`~indexer.sources.RpcPool`: what the pool knows of it, and its health."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    import random

    from ._rpc import RpcClient

__all__ = ["Lacks", "NoNode", "Node"]

# Latency is an exponentially weighted mean: recent answers count most.
_LATENCY_WEIGHT = 0.3


class Lacks(Exception):
    """A node answered, but without block `number`: it lags behind it."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


class NoNode(Exception):
    """No node left that could serve the request (all lack the block, or timed out)."""


@dataclass(eq=False)
class Node:
    index: int
    shown: str  # the redacted URL
    client: RpcClient
    head: int = -1
    served: int = -1  # the highest block it gave a header or logs of
    verified: bool = False  # eth_chainId checked
    failures: int = 0  # consecutive
    ready_at: float = -math.inf  # cooling down until then
    spacing: float = 0.0  # seconds between request starts, after rate limits
    next_send: float = -math.inf
    latency: float = 0.0

    @property
    def label(self) -> str:
        return f"rpc[{self.index}] {self.shown}"

    def succeeded(self, seconds: float) -> None:
        self.failures = 0
        self.latency += _LATENCY_WEIGHT * (seconds - self.latency)
        # Creep back towards no spacing; a limit that still holds answers 429 again.
        self.spacing = 0.0 if self.spacing < 0.01 else self.spacing * 0.8

    def failed(self, kind: str, base: float, cap: float, rng: random.Random) -> float:
        """Rest after a failure of `kind`: capped exponential backoff, full jitter; the pause."""
        self.failures += 1
        bound = min(cap, base * 2 ** (self.failures - 1))
        pause = rng.uniform(0.0, bound)
        if kind == "rate_limit":
            self.spacing = min(cap, max(2 * self.spacing, base))
            pause = max(pause, self.spacing)
        self.ready_at = trio.current_time() + pause
        return pause
