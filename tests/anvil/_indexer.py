"""``indexer run`` as a child process following anvil nodes, and the oracle it must match."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from .._chains import progress
from ._node import ZERO, ChainState, artifact, token_state

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from ._node import Anvil

HANDLERS = '''
"""Balances per chain and holder, supply per chain, and holdings summed over chains."""

from indexer import Context, Entity, Event, on

ZERO = "0x" + "0" * 40


class Account(Entity):  # one chain's balance of one holder; deleted at zero
    id: str  # "<chain id>:<holder>"
    chain_id: int
    holder: str
    balance: int


class Supply(Entity):  # one chain's token
    id: str  # "<chain id>:<token>"
    total: int = 0
    transfers: int = 0


class Holder(Entity):  # shared by the chains: the sum of a holder's balances
    id: str  # "<holder>"
    total: int


async def add(ctx: Context, chain_id: int, holder: str, delta: int) -> None:
    key = f"{chain_id}:{holder}"
    old = await ctx.get(Account, key)
    balance = (old.balance if old else 0) + delta
    if balance == 0:
        ctx.delete(Account, key)
    else:
        ctx.set(Account(id=key, chain_id=chain_id, holder=holder, balance=balance))
    shared = await ctx.get(Holder, holder)
    total = (shared.total if shared else 0) + delta
    if total == 0:
        ctx.delete(Holder, holder)
    else:
        ctx.set(Holder(id=holder, total=total))


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    sender, receiver = event.params["from"], event.params["to"]
    value = event.params["value"]
    if sender != ZERO:
        await add(ctx, event.chain_id, sender, -value)
    if receiver != ZERO:
        await add(ctx, event.chain_id, receiver, value)
    key = f"{event.chain_id}:{event.address}"
    supply = await ctx.get(Supply, key) or Supply(id=key)
    minted = value if sender == ZERO else 0
    burned = value if receiver == ZERO else 0
    ctx.set(supply.replace(total=supply.total + minted - burned, transfers=supply.transfers + 1))
'''

ROLLED_BACK = re.compile(
    r"WARNING indexer\.runtime: chain (\d+) reorganised \(detected at block (\d+)\): "
    r"rolled back to block (\d+)"
)


@dataclass(frozen=True)
class Followed:
    """One chain of the project: its node and its token."""

    node: Anvil
    token: str

    @property
    def chain_id(self) -> int:
        return self.node.chain_id


def write_project(
    directory: Path,
    schema: str,
    chains: Sequence[Followed],
    *,
    max_reorg_depth: int = 20,
    poll_interval: float = 0.1,
    end_block: int | None = None,
) -> Path:
    """A project that follows ``chains`` from block 0 (by default forever: no end block)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "handlers.py").write_text(HANDLERS)
    (directory / "TestToken.abi.json").write_text(json.dumps(artifact()["abi"], indent=1))
    lines = ["name: anvil-e2e", "handlers: handlers.py", f"schema: {schema}", "chains:"]
    for chain in chains:
        lines += [
            f"  - id: {chain.chain_id}",
            "    start_block: 0",
            *([f"    end_block: {end_block}"] if end_block is not None else []),
            f"    max_reorg_depth: {max_reorg_depth}",
            f"    source: {{rpc: '{chain.node.url}', poll_interval: {poll_interval}}}",
            "    contracts:",
            "      - name: Token",
            f'        addresses: ["{chain.token}"]',
            "        abi: TestToken.abi.json",
            "        events: [Transfer]",
        ]
    (directory / "indexer.yaml").write_text("\n".join(lines) + "\n")
    return directory


class IndexerCli:
    """``python -m indexer run PROJECT --no-progress``, started and stopped by PID.

    Each start writes its own stdout/stderr files (files, not pipes: nothing
    can block on a full pipe while the test waits on the database).
    """

    def __init__(
        self, project: Path, database_url: str, log_dir: Path, nodes: Sequence[Anvil]
    ) -> None:
        self.project = project
        self.nodes = nodes
        self._chain_id_calls: list[int] = []
        self.env = {**os.environ, "INDEXER_DATABASE_URL": database_url}
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.runs: list[tuple[Path, Path]] = []  # (stdout, stderr) of each start
        self._files: list[IO[bytes]] = []

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        n = len(self.runs) + 1
        out, err = self.log_dir / f"indexer-{n}.out", self.log_dir / f"indexer-{n}.err"
        self.runs.append((out, err))
        self._files = [out.open("wb"), err.open("wb")]
        self._chain_id_calls = [node.calls("eth_chainId") for node in self.nodes]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "indexer", "run", str(self.project), "--no-progress"],
            stdin=subprocess.DEVNULL,
            stdout=self._files[0],
            stderr=self._files[1],
            env=self.env,
        )

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def wait_running(self) -> None:
        """Wait until the run has started: every chain's source has asked its node for the chain id.

        The CLI handles SIGTERM only from then on; before, while Python
        imports and the database is set up, SIGTERM kills it (status -15).
        """

        def asked() -> bool:
            counts = [node.calls("eth_chainId") for node in self.nodes]
            return all(n > before for n, before in zip(counts, self._chain_id_calls, strict=True))

        wait_until(asked, "the indexer to start following", self)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM once the run has started; the exit status (a clean stop is 0)."""
        assert self.process is not None
        self.wait_running()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"indexer run did not stop within {timeout} s of SIGTERM:\n{self.tail()}")
        self._close()
        return code

    def kill(self) -> None:
        """SIGKILL (kill -9): no flush, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._close()

    def _close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []

    def stdout(self, run: int = -1) -> str:
        return self.runs[run][0].read_text(errors="replace")

    def stderr(self, run: int = -1) -> str:
        return self.runs[run][1].read_text(errors="replace")

    def all_stderr(self) -> str:
        return "".join(err.read_text(errors="replace") for _out, err in self.runs)

    def rollbacks(self, run: int | None = None) -> list[tuple[int, int, int]]:
        """(chain id, detected at, rolled back to) of every rollback warning, of one run or all."""
        text = self.all_stderr() if run is None else self.stderr(run)
        return [(int(c), int(d), int(b)) for c, d, b in ROLLED_BACK.findall(text)]

    def tail(self, lines: int = 30) -> str:
        """The last lines of the current run's stderr, without httpx's request lines."""
        if not self.runs:
            return "(never started)"
        kept = [ln for ln in self.stderr().splitlines() if " INFO httpx: " not in ln]
        return "\n".join(kept[-lines:])


def wait_until(
    check: Callable[[], bool], what: str, cli: IndexerCli | None = None, timeout: float = 60
) -> None:
    """Poll ``check`` until it holds; fail if ``timeout`` passes or the indexer exits first."""
    deadline = time.monotonic() + timeout
    while not check():
        if cli is not None and cli.returncode is not None:
            pytest.fail(
                f"indexer run exited with status {cli.returncode} while waiting for {what}:\n"
                f"{cli.tail()}"
            )
        if time.monotonic() > deadline:
            tail = cli.tail() if cli is not None else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}\n{tail}")
        time.sleep(0.05)


def committed_hash(database_url: str, schema: str, chain_id: int, block: int) -> str | None:
    """The hash the indexer stored for ``block`` (its newest checkpoint of that block)."""
    with psycopg.connect(database_url) as conn:
        exists = conn.execute(
            "SELECT to_regclass(%s)", (f'"{schema}"._indexer_checkpoints',)
        ).fetchone()
        if exists is None or exists[0] is None:
            return None
        row = conn.execute(
            sql.SQL(
                "SELECT block_hash FROM {}._indexer_checkpoints"
                " WHERE chain_id = %s AND block_number = %s ORDER BY id DESC LIMIT 1"
            ).format(sql.Identifier(schema)),
            (chain_id, block),
        ).fetchone()
    return None if row is None else str(row[0])


def caught_up(database_url: str, schema: str, chains: Sequence[Followed]) -> bool:
    """Every chain's committed progress is the node's head, with the node's head hash.

    The hash matters: anvil_reorg replaces blocks without changing the head
    number, so progress alone would not show that the new branch is in.
    """
    for chain in chains:
        head = chain.node.head()
        if progress(database_url, schema, chain.chain_id) != head:
            return False
        if committed_hash(database_url, schema, chain.chain_id, head) != chain.node.block_hash(
            head
        ):
            return False
    return True


# Commit stalls worked around by wait_caught_up, for the session's summary.
def wait_caught_up(
    database_url: str,
    schema: str,
    chains: Sequence[Followed],
    cli: IndexerCli,
    timeout: float = 60,
) -> None:
    """Wait until the indexer has committed every chain's head (see :func:`caught_up`).

    The chains are quiet meanwhile: everything processed must get committed
    without a new block to carry it (test_commit_stall.py).
    """
    heads = ", ".join(f"chain {c.chain_id} at {c.node.head()}" for c in chains)
    deadline = time.monotonic() + timeout
    while not caught_up(database_url, schema, chains):
        if cli.returncode is not None:
            pytest.fail(
                f"indexer run exited with status {cli.returncode} while waiting for it to commit "
                f"{heads}:\n{cli.tail()}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting to commit {heads}\n{cli.tail()}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Tables:
    accounts: dict[str, int]  # "<chain>:<holder>" -> balance
    supplies: dict[str, tuple[int, int]]  # "<chain>:<token>" -> (total, transfers)
    holders: dict[str, int]  # holder -> total over the chains


def read_tables(database_url: str, schema: str) -> Tables:
    with psycopg.connect(database_url) as conn:

        def rows(query: str) -> list[tuple[object, ...]]:
            return conn.execute(sql.SQL(query).format(sql.Identifier(schema))).fetchall()

        accounts = rows("SELECT id, chain_id, holder, balance FROM {}.account")
        supplies = rows("SELECT id, total, transfers FROM {}.supply")
        holders = rows("SELECT id, total FROM {}.holder")
    for key, chain_id, holder, _balance in accounts:
        assert key == f"{chain_id}:{holder}", (key, chain_id, holder)
    return Tables(
        accounts={str(r[0]): int(str(r[3])) for r in accounts},
        supplies={str(r[0]): (int(str(r[1])), int(str(r[2]))) for r in supplies},
        holders={str(r[0]): int(str(r[1])) for r in holders},
    )


def expected_tables(states: dict[Followed, ChainState]) -> Tables:
    accounts: dict[str, int] = {}
    supplies: dict[str, tuple[int, int]] = {}
    holders: dict[str, int] = {}
    for chain, state in states.items():
        for holder, balance in state.balances.items():
            assert holder != ZERO
            if balance:
                accounts[f"{chain.chain_id}:{holder}"] = balance
                holders[holder] = holders.get(holder, 0) + balance
        if state.transfers:
            supplies[f"{chain.chain_id}:{chain.token}"] = (state.total_supply, state.transfers)
    return Tables(accounts, supplies, {h: t for h, t in holders.items() if t})


def check_oracle(database_url: str, schema: str, chains: Sequence[Followed]) -> Tables:
    """The tables equal what the nodes say at their heads (balanceOf, totalSupply, logs).

    Call it when :func:`caught_up` holds and no block is being mined.
    """
    states = {chain: token_state(chain.node, chain.token) for chain in chains}
    want = expected_tables(states)
    got = read_tables(database_url, schema)
    assert got.supplies == want.supplies
    assert got.accounts == want.accounts
    assert got.holders == want.holders
    # The framework's own count: events of rolled-back blocks are taken off.
    with psycopg.connect(database_url) as conn:
        counts: dict[int, int] = dict(
            conn.execute(
                sql.SQL("SELECT chain_id, events_processed FROM {}._indexer_chains").format(
                    sql.Identifier(schema)
                )
            ).fetchall()
        )
    assert counts == {chain.chain_id: states[chain].transfers for chain in chains}
    return got
