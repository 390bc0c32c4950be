"""The rows each write sends: deterministic batches of accounts, half updates after the first."""

from __future__ import annotations

import random

Row = tuple[str, str, str, int]


def make_batches(rows: int, writes: int, seed: int = 20240611) -> list[list[Row]]:
    """``writes`` batches of ``rows`` accounts each, deterministic from ``seed``.

    The first batch is all new ids; every later one is half updates of ids
    written before (distinct within the batch, as ON CONFLICT DO UPDATE
    requires) and half new ids.
    """
    rng = random.Random(seed)
    tokens = [f"0x{rng.getrandbits(160):040x}" for _ in range(64)]
    known: list[tuple[str, str, str]] = []
    batches: list[list[Row]] = []
    for i in range(writes):
        updates = 0 if i == 0 else min(rows // 2, len(known))
        batch: list[Row] = [
            (ident, token, holder, rng.getrandbits(200))
            for ident, token, holder in rng.sample(known, updates)
        ]
        fresh: list[tuple[str, str, str]] = []
        for _ in range(rows - updates):
            token = rng.choice(tokens)
            holder = f"0x{rng.getrandbits(160):040x}"
            fresh.append((f"{token}-{holder}", token, holder))
        batch.extend((ident, token, holder, rng.getrandbits(200)) for ident, token, holder in fresh)
        known.extend(fresh)
        batches.append(batch)
    return batches
