"""The benchmark's scripted chain: older history, then the blocks the reorg replaces.

Every transfer of the last ``depth`` blocks touches two Account entities no other
transfer there touches; the older history mints to three quarters of the same
accounts first (see ``bench/rollback.py`` for the four cases).
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.testing import LogSpec, ScriptedChain

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TOKENS = ("0x" + "a1" * 20, "0x" + "b2" * 20)
MINTER = "0x" + "ee" * 20
HOLDER_BASE = 0x1000_0000
BRANCH_TRANSFERS = 32  # transfers on the replacing branch


def _topic(address: str) -> str:
    return "0x" + address[2:].rjust(64, "0")


def _transfer(token: str, sender: str, receiver: str, value: int) -> LogSpec:
    return LogSpec(token, (TRANSFER, _topic(sender), _topic(receiver)), "0x" + f"{value:064x}")


def _holder(n: int) -> str:
    return "0x" + f"{HOLDER_BASE + n:040x}"


@dataclass(frozen=True)
class Shape:
    """The chain's size: accounts the replaced blocks touch, their number, the older history."""

    entities: int
    depth: int
    history_blocks: int

    @property
    def pairs(self) -> int:
        return self.entities // 2

    @property
    def head(self) -> int:
        return self.history_blocks + self.depth

    @property
    def fork(self) -> int:
        """The first replaced block; the rollback keeps ``fork - 1``."""
        return self.history_blocks + 1


def build_chain(shape: Shape) -> ScriptedChain:
    """History in blocks 1..history_blocks, the touched entities in the last ``depth`` blocks."""
    logs: dict[int, list[LogSpec]] = {}
    for i in range(shape.pairs):
        token = TOKENS[i % 2]
        sender, receiver = _holder(2 * i), _holder(2 * i + 1)
        value = 1_000 + i
        kind = i % 4
        if kind != 3:
            minted = (sender, value) if kind == 0 else (sender, 2 * value) if kind == 1 else None
            to, amount = minted if minted is not None else (receiver, 5 * value)
            old = 1 + i % shape.history_blocks
            logs.setdefault(old, []).append(_transfer(token, MINTER, to, amount))
        block = shape.fork + i % shape.depth
        logs.setdefault(block, []).append(_transfer(token, sender, receiver, value))
    return ScriptedChain(1, head=shape.head, logs=logs)


def branch_logs(shape: Shape) -> dict[int, list[LogSpec]]:
    """A few transfers on the replacing branch, among accounts the old branch touched."""
    logs: dict[int, list[LogSpec]] = {}
    for i in range(min(BRANCH_TRANSFERS, shape.pairs)):
        block = shape.fork + (2 * i) % shape.depth
        token = TOKENS[i % 2]
        logs.setdefault(block, []).append(
            _transfer(token, _holder(2 * i + 1), _holder(2 * i), 7 + i)
        )
    return logs


def reorg(chain: ScriptedChain, shape: Shape) -> None:
    """Replace the last ``depth`` blocks with the branch of :func:`branch_logs`, then add a block."""
    chain.reorg(shape.depth, branch_logs(shape))
    chain.advance(1, {chain.head + 1: [_transfer(TOKENS[0], MINTER, _holder(0), 3)]})


def touched(chain: ScriptedChain, first: int, last: int) -> int:
    """Distinct entity rows (accounts and tokens) the logs of ``first..last`` change."""
    ids: set[str] = set()
    for lg in chain.logs(first, last, topic0s=[TRANSFER]):
        token = lg["address"]
        ids.add(token)
        for topic in lg["topics"][1:3]:
            ids.add(f"{token}-0x{topic[-40:]}")
    return len(ids)
