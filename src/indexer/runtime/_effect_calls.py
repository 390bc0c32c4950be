"""Running effects for the processor: cache lookups, batched loads, rate-limited calls."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

import trio

from .._errors import ConfigError
from ..persist import load_effect_outputs
from ..store import MISSING

if TYPE_CHECKING:
    from .._metrics import Metrics
    from ..handlers import Effect
    from ..persist import RetryingSession
    from ..store import EffectCache, Store

__all__ = ["EffectCalls"]

log = logging.getLogger("indexer.runtime")

# Effect calls started at once by one preload pass (each effect's own
# rate limit applies on top).
_MAX_CONCURRENT = 16


class EffectCalls:
    """The effects of one run: outputs from memory, then the database, then the function."""

    def __init__(self, store: Store, loads: RetryingSession, metrics: Metrics) -> None:
        self.store = store
        self.loads = loads
        self.metrics = metrics
        self._next_call: dict[str, float] = {}
        self._concurrency = trio.CapacityLimiter(_MAX_CONCURRENT)
        self.call_seconds = 0.0

    def cache(self, eff: Effect[Any, Any]) -> EffectCache:
        cache = self.store.effects.get(eff.name)
        if cache is None:
            raise ConfigError(
                f"ctx.effect({eff.name}, ...): the effect is not visible at the top level of the handlers module; "
                f"define or import it there so that its cache table is created at start."
            )
        return cache

    def new_batch(self) -> None:
        # Uncached effects are de-duplicated within a batch only.
        for cache in self.store.effects.values():
            cache.clear_unpersisted()

    async def get(self, eff: Effect[Any, Any], input: Any, cp: int) -> Any:
        """The output for ``input``: memory, else the database, else a call."""
        cache = self.cache(eff)
        key, text = eff.key(input)
        value = cache.get(key)
        if value is not MISSING:
            return value
        if eff.cache and await self._load(eff, cache, [key]):
            return cache.get(key)
        return await self._compute(eff, cache, key, text, input, cp)

    async def prefetch(
        self, calls: dict[Effect[Any, Any], dict[str, tuple[str, Any]]], cp: int
    ) -> None:
        """After a preload pass: load what is stored, run the rest concurrently.

        Failures are left for the real pass, where they surface inside the
        handler that made the call (with its block and log index).
        """
        todo: list[tuple[Effect[Any, Any], EffectCache, str, str, Any]] = []
        for eff, wanted in calls.items():
            cache = self.cache(eff)
            keys = [k for k in wanted if cache.get(k) is MISSING]
            if eff.cache and keys:
                await self._load(eff, cache, keys)
            todo.extend(
                (eff, cache, k, wanted[k][0], wanted[k][1]) for k in keys if cache.get(k) is MISSING
            )
        if not todo:
            return

        async def one(
            eff: Effect[Any, Any], cache: EffectCache, key: str, text: str, input: Any
        ) -> None:
            try:
                await self._compute(eff, cache, key, text, input, cp)
            except Exception:
                log.debug("effect %s failed during prefetch", eff.name, exc_info=True)

        async with trio.open_nursery() as nursery:
            for item in todo:
                nursery.start_soon(one, *item)

    async def _load(self, eff: Effect[Any, Any], cache: EffectCache, keys: list[str]) -> bool:
        """Load stored outputs; True if every key was found and still valid."""
        stored = await self.loads.run(
            f"loading the stored outputs of effect {eff.name}",
            lambda session: load_effect_outputs(session, eff.name, keys),
        )
        assert stored is not None
        complete = True
        for key in keys:
            if key not in stored:
                complete = False
            elif eff.check_output(stored[key]):
                cache.load(key, stored[key])
            else:
                # Stored by a version of the function with another return
                # type: recompute (and overwrite) it.
                complete = False
                self.metrics.effect_invalidations.labels(eff.name).inc()
        return complete

    async def _compute(
        self, eff: Effect[Any, Any], cache: EffectCache, key: str, text: str, input: Any, cp: int
    ) -> Any:
        async with self._concurrency:
            await self._throttle(eff)
            started = time.perf_counter()
            self.metrics.effect_calls.labels(eff.name).inc()
            try:
                value = await eff.fn(input)
            finally:
                self.call_seconds += time.perf_counter() - started
        if not eff.check_output(value):
            raise TypeError(
                f"effect {eff.name} returned {value!r} for input {text}, which does not fit its declared "
                f"return type {eff.output!r}"
            )
        cache.put(key, text, value, cp)
        return value

    async def _throttle(self, eff: Effect[Any, Any]) -> None:
        if eff.rate_limit is None:
            return
        now = trio.current_time()
        at = max(now, self._next_call.get(eff.name, -math.inf))
        self._next_call[eff.name] = at + 1.0 / eff.rate_limit
        await trio.sleep_until(at)
