"""The benchmark's chain: ``blocks`` blocks of ``per_block`` ERC20 Transfers each.

Deterministic (a seeded generator): the server process and the oracle in
the benchmark's process build the same chain from the same numbers.  The
scripted chain makes every log its own transaction, so a full block holds
exactly its Transfers' transactions (a mainnet block holds many more: see
docs/performance.md).
"""

from __future__ import annotations

import random

from indexer.testing import LogSpec, ScriptedChain

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TOKENS = tuple("0x" + f"{0xC0 + i:02x}" * 20 for i in range(8))
HOLDERS = 5_000


def _topic(address: str) -> str:
    return "0x" + address[2:].rjust(64, "0")


def _holder(n: int) -> str:
    return "0x" + f"{0x2000_0000 + n:040x}"


def transfers(blocks: int, per_block: int, seed: int = 16) -> dict[int, list[LogSpec]]:
    rng = random.Random(seed)
    logs: dict[int, list[LogSpec]] = {}
    for n in range(1, blocks + 1):
        logs[n] = [
            LogSpec(
                rng.choice(TOKENS),
                (
                    TRANSFER,
                    _topic(_holder(rng.randrange(HOLDERS))),
                    _topic(_holder(rng.randrange(HOLDERS))),
                ),
                "0x" + f"{rng.randint(1, 10**24):064x}",
            )
            for _ in range(per_block)
        ]
    return logs


def build_chain(blocks: int, per_block: int) -> ScriptedChain:
    return ScriptedChain(1, head=blocks, logs=transfers(blocks, per_block))


def expected_balances(blocks: int, per_block: int) -> dict[str, tuple[int, int]]:
    """holder -> (balance, transfers), as the handler computes them."""
    out: dict[str, tuple[int, int]] = {}
    for specs in transfers(blocks, per_block).values():
        for spec in specs:
            value = int(spec.data, 16)
            for topic, delta in ((spec.topics[1], -value), (spec.topics[2], value)):
                holder = "0x" + topic[-40:]
                balance, count = out.get(holder, (0, 0))
                out[holder] = (balance + delta, count + 1)
    return out
