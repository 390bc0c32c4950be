"""One seeded simulation: the real CLI against a faulty chain and a faulty database.

For a seed, :func:`make_plan` fixes everything that can be fixed in advance:
the chain (initial blocks, the blocks to come, reorgs of depth 1..8 and
their logs), the JSON-RPC faults and latency, the database fault rate and
outages, the capacity target, and the fate of each ``indexer run`` process
(killed with SIGKILL or stopped with SIGTERM after a delay).  :func:`simulate`
then plays it out in real time:

* the scripted chain grows every 20-50 ms and reorganises, served by
  ``indexer.testing.open_rpc_server`` with scripted failures;
* the CLI reaches PostgreSQL only through :mod:`._proxy`, which drops
  connections mid-statement, mid-COPY and after COMMIT;
* processes are killed or stopped and started again, until the chain has
  reached its final head, every planned interruption is done and the faults
  are switched off; then the last run must end by itself (``end_block`` is
  the final head) with exit status 0.

Which exits are acceptable: 0 with ``done:`` (the end), 0 with ``stopped:``
only after our SIGTERM, -9 only after our SIGKILL, and 1 only when its error
is one an injected fault explains (the database down past
``--db-retry-seconds``, the node failing 8 times) and a fault was injected
while it ran.  A lost connection never explains an exit: every connection
(the writer's, the loads', start-up's) is retried, also when the proxy drops
all of them at once (``kill_alls``).  Anything else fails the seed.

Checked after every process exit, against an independent computation
(``tests._chains.expected``) over the chain as it is at that moment: when
the stored block hashes all match the canonical chain up to
``progress_block``, the tables equal the canonical state at that block (a
committed prefix is always consistent).  Checked at the end: progress is the
final head; every table equals the state computed from the final canonical
chain; the stored hashes are canonical; ``events_processed`` counts the
canonical events; and each reorg that replaced committed blocks was logged
as rolled back by some later run (unless a SIGKILL may have hidden the log).

Timing is real, so the interleavings differ between runs of one seed; the
seed fixes the script, not the schedule.  The invariants hold for all of
them.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import psycopg
import trio
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from indexer.testing import open_rpc_server

from .._chains import TRANSFER, expected, make_rpc_project, random_logs, tables
from ._proxy import open_db_proxy

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from indexer.testing import RpcServer, ScriptedChain

    from ._proxy import DbProxy

__all__ = ["Outcome", "Plan", "SimulationFailure", "make_plan", "simulate"]

MAX_DEPTH = 8  # deepest reorg scripted
WINDOW = 10  # the project's max_reorg_depth
MAX_RUNS = 30  # processes per seed before the seed counts as stuck
RPC_KINDS = ("http_503", "http_429", "disconnect", "rpc_error")
RPC_METHODS = ("eth_getLogs", "eth_getBlockByNumber", "eth_blockNumber", "*")

ROLLED_BACK = re.compile(
    r"WARNING indexer\.runtime: chain 1 reorganised \(detected at block \d+\): "
    r"rolled back to block (\d+)"
)
WRITE_RETRY = re.compile(r"WARNING indexer\.persist: .* failed \(.*\); retry \d+ in")
# How a connection lost to the proxy shows in psycopg's messages.
_LOST = (
    r"(?:server closed the connection unexpectedly|consuming input failed"
    r"|no connection to the server|the connection is (?:closed|lost)|connection failed)"
)
# Exit-1 errors an injected fault explains, by cause.  Any other is a finding.
FAULT_CAUSES = (
    ("db-connect", re.compile(r"^error: cannot connect to PostgreSQL")),
    ("db-retry-limit", re.compile(r"with transient database errors; giving up")),
    ("rpc-retry-limit", re.compile(r"^error: JSON-RPC .* gave up after \d+ attempts")),
    # A load (ctx.get/find) on a dropped connection, reported as the handler's error.
    (
        "db-lost-in-load",
        re.compile(rf"^error: handler \w+ \(.*\) failed on .*OperationalError: {_LOST}"),
    ),
    (
        "db-lost",
        re.compile(
            rf"^error: (?:unexpected )?\w*(?:Operational|Interface|Database)Error: .*{_LOST}"
        ),
    ),
    ("db-lost", re.compile(rf"^error: .*{_LOST}")),
)
NOT_FAULTS = re.compile(
    r"IntegrityError|UniqueViolation|DataError|ReorgTooDeep|deeper than|SchemaMismatch"
    r"|second signal|AssertionError|duplicate key|violates"
)


def fault_cause(error: str) -> str | None:
    """The injected-fault cause that explains an ``error:`` paragraph, or None."""
    if NOT_FAULTS.search(error):
        return None
    for cause, pattern in FAULT_CAUSES:
        if pattern.search(error):
            return cause
    return None


class SimulationFailure(AssertionError):
    """A seed whose run broke an invariant; the message says how to replay it."""


@dataclass(frozen=True)
class Plan:
    """Everything a seed fixes in advance."""

    seed: int
    head0: int  # blocks before the first run
    final_head: int  # the project's end_block
    interval: tuple[float, float]  # seconds between new blocks (uniform)
    reorg_rate: float  # chance of a reorg after each new block
    pause_rate: float  # chance that the chain waits for the indexer before a reorg
    target: int  # INDEXER_TARGET_IN_MEMORY_ENTITIES
    drop_rate: float  # database faults per statement of the writer's connections
    other_drop_rate: float  # the same for the other connections (loads, start-up)
    db_retry_seconds: float  # --db-retry-seconds
    outages: tuple[tuple[float, float], ...]  # (at, seconds) the database is down
    kill_alls: tuple[float, ...]  # at: every open database connection dropped at once
    rpc_faults: tuple[tuple[float, str, int, str], ...]  # (at, method, times, kind)
    latencies: tuple[tuple[float, float], ...]  # (at, seconds of latency on every call)
    interruptions: tuple[tuple[float, str], ...]  # (seconds after start, "kill" | "term")
    quiet_after: float  # seconds after the chain is final and runs are done: faults off

    def describe(self) -> str:
        return (
            f"blocks {self.head0}->{self.final_head}, reorg rate {self.reorg_rate:g}, "
            f"target {self.target}, db drop rate {self.drop_rate:g} (others {self.other_drop_rate:g}), "
            f"{len(self.outages)} outage(s) (retry {self.db_retry_seconds:g}s), "
            f"{len(self.kill_alls)} kill-all(s), "
            f"{len(self.rpc_faults)} rpc fault burst(s), "
            f"interruptions {'/'.join(kind for _at, kind in self.interruptions) or '-'}"
        )


def make_plan(seed: int) -> Plan:
    rng = random.Random(f"plan-{seed}")
    # The processes' fates first: the chain grows for about as long as they
    # live (each start costs about a second), so reorgs meet running indexers.
    interruptions = tuple(
        (rng.uniform(0.8, 3.5), rng.choice(("kill", "term"))) for _ in range(rng.randint(1, 3))
    )
    interval = (0.02, 0.05)
    production = sum(at for at, _kind in interruptions) + rng.uniform(0.5, 2.0)
    head0 = rng.randint(15, 40)
    # Pauses before reorgs (see _Sim.produce) take part of the time.
    final = head0 + max(40, round(0.7 * production / (sum(interval) / 2)))
    retry = 30.0
    outages: list[tuple[float, float]] = []
    if rng.random() < 0.3:
        outages.append((rng.uniform(0, production), rng.uniform(0.2, 1.5)))
    if rng.random() < 0.15:
        # Down for longer than the writer retries: the run must fail cleanly.
        retry = 1.0
        outages.append((rng.uniform(0, production), rng.uniform(1.5, 3.0)))
    # What a DBA's pg_terminate_backend, a failover or a pooler restart does:
    # every connection at once, wherever each one is (a load, a COMMIT...).
    kill_alls = tuple(sorted(rng.uniform(0, production) for _ in range(rng.randint(0, 4))))
    faults: list[tuple[float, str, int, str]] = []
    for _ in range(rng.randint(0, 8)):
        kind = rng.choice(RPC_KINDS)
        faults.append(
            (rng.uniform(0, production), rng.choice(RPC_METHODS), rng.randint(1, 3), kind)
        )
    if rng.random() < 0.05:
        # More failures in a row than the client's 8 attempts.
        faults.append((rng.uniform(0, production), "*", 8, rng.choice(RPC_KINDS)))
    latencies = tuple(
        (rng.uniform(0, production), rng.choice((0.0, 0.005, 0.02, 0.05)))
        for _ in range(rng.randint(0, 3))
    )
    return Plan(
        seed=seed,
        head0=head0,
        final_head=final,
        interval=interval,
        reorg_rate=rng.choice((0.03, 0.05, 0.08)),
        pause_rate=rng.choice((0.0, 0.5, 0.8)),
        target=rng.choice((5, 20, 100_000)),
        drop_rate=rng.choice((0.0, 0.005, 0.015, 0.03)),
        other_drop_rate=rng.choice((0.0, 0.002, 0.005, 0.01)),
        db_retry_seconds=retry,
        outages=tuple(sorted(outages)),
        kill_alls=kill_alls,
        rpc_faults=tuple(sorted(faults)),
        latencies=tuple(sorted(latencies)),
        interruptions=interruptions,
        quiet_after=rng.uniform(0.0, 1.5),
    )


@dataclass
class RunRecord:
    """One ``indexer run`` process."""

    index: int
    planned: str  # "kill", "term" or "" (left to end by itself)
    started: float
    ended: float = 0.0
    sent: str = ""  # the signal we sent, if any
    returncode: int | None = None
    verdict: str = ""
    stdout: str = ""
    stderr: str = ""
    faults: int = 0  # faults injected while it ran

    def line(self) -> str:
        error = _error_line(self.stderr)
        return (
            f"run {self.index}: planned {self.planned or 'end'}, sent {self.sent or '-'}, "
            f"exit {self.returncode}, {self.verdict}, {self.ended - self.started:.1f}s, "
            f"{self.faults} fault(s) injected" + (f"; {error[:300]}" if error else "")
        )


@dataclass
class Reorg:
    at: float
    fork: int  # first replaced block
    depth: int
    committed: int | None  # progress_block at that moment


@dataclass
class Outcome:
    """What a seed did, for the summary line."""

    plan: Plan
    seconds: float = 0.0
    runs: list[RunRecord] = field(default_factory=list)
    reorgs: list[Reorg] = field(default_factory=list)
    rollbacks: int = 0
    prefix_checks: int = 0
    db_stats: dict[str, int] = field(default_factory=dict)
    rpc_failures: int = 0

    def summary(self) -> str:
        verdicts: dict[str, int] = {}
        for r in self.runs:
            verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
        hits = sum(1 for r in self.reorgs if r.committed is not None and r.committed >= r.fork)
        db = self.db_stats
        drops = sum(n for k, n in db.items() if k.startswith("drop_"))
        retries = sum(len(WRITE_RETRY.findall(r.stderr)) for r in self.runs)
        return (
            f"seed {self.plan.seed}: ok {self.seconds:.1f}s; {len(self.runs)} runs "
            f"({', '.join(f'{n} {v}' for v, n in sorted(verdicts.items()))}); "
            f"{len(self.reorgs)} reorgs ({hits} of committed blocks), {self.rollbacks} rollbacks logged; "
            f"db: {db.get('statements', 0)} statements, {drops} drops "
            f"({db.get('drop_commit_reply', 0)} after COMMIT), "
            f"{db.get('refused', 0)} refused, {retries} write retries; "
            f"rpc: {self.rpc_failures} scripted failures; "
            f"target {self.plan.target}; {self.prefix_checks} prefix checks"
        )


def replay_command(seed: int) -> str:
    return f"python -m tests.sim --seeds 1 --first {seed} --verbose"


def _error_line(stderr: str) -> str:
    """The CLI's closing ``error:`` paragraph (joined into one line), or ""."""
    lines = stderr.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(("error:", "interrupted")):
            return " ".join(ln.strip() for ln in lines[i:])
    return ""


class _Sim:
    def __init__(
        self,
        plan: Plan,
        url: str,
        schema: str,
        workdir: Path,
        log: Callable[[str], object] | None = None,
        cli_debug: bool = False,
    ) -> None:
        self.plan = plan
        self.cli_debug = cli_debug
        self.url = url  # direct, for the checks
        self.schema = schema
        self.workdir = workdir
        self.log = log
        self.outcome = Outcome(plan)
        self.chain_final = trio.Event()
        self.runs_planned_done = trio.Event()
        self.quiet = False
        self.rpc_failures = 0
        self._burst = ("*", 0)  # the last RPC burst: (method, its calls once it is used up)
        self.started = 0.0

    def say(self, text: str) -> None:
        if self.log is not None:
            self.log(f"  [{trio.current_time() - self.started:6.2f}s] {text}")

    def fail(self, text: str) -> SimulationFailure:
        runs = "\n".join(f"  {r.line()}" for r in self.outcome.runs)
        return SimulationFailure(
            f"seed {self.plan.seed}: {text}\n"
            f"plan: {self.plan.describe()}\n"
            f"runs:\n{runs}\n"
            f"logs of every run: {self.workdir}\n"
            f"replay: {replay_command(self.plan.seed)}"
        )

    # -- the direct view of the database ------------------------------------

    def _query(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT to_regclass(%s)", (f'"{self.schema}"._indexer_chains',)
            ).fetchone()
            if exists is None or exists[0] is None:
                return []
            return conn.execute(
                sql.SQL(query).format(sql.Identifier(self.schema)), params or None
            ).fetchall()

    def progress(self) -> tuple[int, int] | None:
        rows = self._query(
            "SELECT progress_block, events_processed FROM {}._indexer_chains WHERE chain_id = 1"
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def stored_hashes(self) -> list[tuple[int, int, str]]:
        return [
            (int(i), int(b), str(h))
            for i, b, h in self._query(
                "SELECT id, block_number, block_hash FROM {}._indexer_checkpoints"
                " WHERE chain_id = 1 ORDER BY id"
            )
        ]

    def check_prefix(self, chain: ScriptedChain, after: str) -> None:
        """If the stored hashes say the database holds canonical blocks, it holds their state.

        Synchronous on purpose: the chain cannot change while it runs.
        """
        state = self.progress()
        if state is None:
            return
        block, _events = state
        hashes = self.stored_hashes()
        if not hashes or max(b for _i, b, _h in hashes) != block:
            return
        if any(b > chain.head or chain.block(b).hash != h for _i, b, h in hashes):
            return  # a reorg the next run has to roll back
        self.outcome.prefix_checks += 1
        got = tables(self.url, self.schema)
        want = expected(chain, block)
        if got != want:
            raise self.fail(
                f"after {after}, the database holds progress {block} with canonical hashes, "
                f"but its tables differ from the canonical state at block {block}: "
                f"{_diff(got, want)}"
            )

    # -- the chain and the faults -------------------------------------------

    async def produce(self, chain: ScriptedChain) -> None:
        plan = self.plan
        rng = random.Random(f"chain-{plan.seed}")
        while chain.head < plan.final_head:
            await trio.sleep(rng.uniform(*plan.interval))
            reorg = rng.random() < plan.reorg_rate
            if reorg and rng.random() < plan.pause_rate:
                # Hold the chain still for a while (or until the indexer has
                # committed its tip), so that the reorg replaces committed blocks.
                await self.pause(chain, rng.uniform(0.3, 1.0))
            # From here to the end of the step nothing awaits: no run can see
            # the new block without its reorg, nor end on the final block before it.
            number = chain.head + 1
            chain.advance(1, random_logs(rng, [number]))
            if reorg:
                depth = rng.randint(1, min(MAX_DEPTH, chain.head - 1))
                state = self.progress()  # synchronous: the same instant as the reorg
                fork = chain.head - depth + 1
                chain.reorg(depth, random_logs(rng, range(fork, chain.head + 1)))
                self.outcome.reorgs.append(
                    Reorg(time.monotonic(), fork, depth, None if state is None else state[0])
                )
                self.say(
                    f"reorg depth {depth} at head {chain.head} (committed "
                    f"{None if state is None else state[0]})"
                )
        self.say(f"chain final at {chain.head}")
        self.chain_final.set()

    async def pause(self, chain: ScriptedChain, seconds: float) -> None:
        with trio.move_on_after(seconds):
            while True:
                state = await trio.to_thread.run_sync(self.progress)
                if state is not None and state[0] >= chain.head:
                    return
                await trio.sleep(0.05)

    async def chaos(self, server: RpcServer, proxy: DbProxy) -> None:
        plan = self.plan
        events: list[tuple[float, str, tuple[Any, ...]]] = [
            *((at, "outage", (secs,)) for at, secs in plan.outages),
            *((at, "kill-all", ()) for at in plan.kill_alls),
            *((at, "rpc", (m, n, k)) for at, m, n, k in plan.rpc_faults),
            *((at, "latency", (secs,)) for at, secs in plan.latencies),
        ]
        for at, what, args in sorted(events, key=lambda e: e[0]):
            await trio.sleep_until(self.started + at)
            if self.quiet:
                return
            if what == "outage":
                self.say(f"database down for {args[0]:.2f}s")
                proxy.down(args[0])
            elif what == "kill-all":
                self.say("every database connection dropped")
                proxy.drop_all()
            elif what == "rpc":
                method, times, kind = args
                # One burst at a time: stacked bursts would make one call fail
                # more often in a row than any burst says.
                for _ in range(250):  # 5 s at most, else this burst is left out
                    if self._burst_consumed(server):
                        break
                    await trio.sleep(0.02)
                else:
                    continue
                # rpc_error: a rate limit, which the client retries like a 429.
                server.fail(method, times, kind=kind, code=-32005, message="rate limit exceeded")
                self._burst = (method, _calls(server, method) + times)
                self.rpc_failures += times
                self.say(f"rpc: next {times} {method} fail with {kind}")
            else:
                server.latency("*", args[0])

    def _burst_consumed(self, server: RpcServer) -> bool:
        method, until = self._burst
        return _calls(server, method) >= until

    async def calm_down(self, server: RpcServer, proxy: DbProxy) -> None:
        """Switch every fault off once the chain is final and the planned runs are over."""
        await self.chain_final.wait()
        await self.runs_planned_done.wait()
        await trio.sleep(self.plan.quiet_after)
        self.quiet = True
        proxy.enabled = False
        server.latency("*", 0)
        self.say("faults off")

    def injected(self, proxy: DbProxy) -> int:
        return proxy.faults + self.rpc_failures

    # -- the processes ------------------------------------------------------

    async def run_once(
        self,
        index: int,
        planned: tuple[float, str] | None,
        command: list[str],
        env: dict[str, str],
        server: RpcServer,
        proxy: DbProxy,
    ) -> RunRecord:
        rec = RunRecord(index, planned[1] if planned else "", time.monotonic())
        out_path = self.workdir / f"run-{index:02d}.out"
        err_path = self.workdir / f"run-{index:02d}.err"
        # A burst scripted before this run but not yet used up fails this run's calls.
        faults_before = self.injected(proxy) - (not self._burst_consumed(server))
        proxy.new_epoch()
        ready_calls = server.calls["eth_chainId"]
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = await trio.lowlevel.open_process(command, stdout=out, stderr=err, env=env)
        try:
            if planned is not None:
                delay, kind = planned
                with trio.move_on_after(delay):
                    await proc.wait()
                if proc.returncode is None and kind == "term":
                    # SIGTERM is handled once the run has started (before that
                    # Python's default action applies); the first eth_chainId
                    # comes after the handler is installed.
                    for _ in range(1000):  # 20 s at most
                        if server.calls["eth_chainId"] > ready_calls or proc.returncode is not None:
                            break
                        await trio.sleep(0.02)
                    if server.calls["eth_chainId"] == ready_calls:
                        kind = "kill"
                if proc.returncode is None:
                    rec.sent = "SIGTERM" if kind == "term" else "SIGKILL"
                    self.say(f"run {index}: {rec.sent}")
                    proc.send_signal(signal.SIGTERM if kind == "term" else signal.SIGKILL)
            # A stopped run flushes (retrying writes for up to db_retry_seconds).
            limit = 90 + self.plan.db_retry_seconds
            with trio.move_on_after(limit) as scope:
                await proc.wait()
            if scope.cancelled_caught:
                proc.kill()
                await proc.wait()
                rec.verdict = "hung"
        finally:
            if proc.returncode is None:
                with trio.CancelScope(shield=True):
                    proc.kill()
                    await proc.wait()
        rec.ended = time.monotonic()
        rec.returncode = proc.returncode
        rec.stdout = out_path.read_text(errors="replace")
        rec.stderr = err_path.read_text(errors="replace")
        rec.faults = self.injected(proxy) - faults_before
        self.outcome.runs.append(rec)
        if rec.verdict == "hung":
            raise self.fail(f"run {index} did not end within {limit:g}s")
        rec.verdict = self.judge(rec)
        self.say(rec.line())
        return rec

    def judge(self, rec: RunRecord) -> str:
        rc = rec.returncode
        error = _error_line(rec.stderr)
        if rc == -signal.SIGKILL and rec.sent == "SIGKILL":
            return "killed"
        if rc == 0 and "\nstopped:" in "\n" + rec.stdout:
            if rec.sent != "SIGTERM":
                raise self.fail(f"run {rec.index} says stopped, but no signal was sent")
            return "stopped"
        if rc == 0 and "\ndone:" in "\n" + rec.stdout:
            if not self.chain_final.is_set():
                raise self.fail(f"run {rec.index} is done before the chain was final")
            want = f"committed through block {self.plan.final_head:,}"
            if want not in rec.stdout:
                raise self.fail(f"run {rec.index} is done but its summary lacks {want!r}")
            return "done"
        cause = fault_cause(error)
        if rc == 1 and cause in ("db-lost", "db-lost-in-load"):
            # Every connection (writer, loads, start-up) is retried for
            # --db-retry-seconds: a lost connection must not end the run.
            raise self.fail(
                f"run {rec.index} ended with a lost database connection although every "
                f"connection is retried for {self.plan.db_retry_seconds:g}s: {error[:400]}"
            )
        long_outage = any(secs > self.plan.db_retry_seconds for _at, secs in self.plan.outages)
        # (A run that cannot connect at all at start fails at once, by design:
        # "db-connect" is explained by any fault while it ran.)
        if rc == 1 and cause == "db-retry-limit" and not long_outage:
            raise self.fail(
                f"run {rec.index} gave up on the database although no outage outlasted "
                f"--db-retry-seconds {self.plan.db_retry_seconds:g}: {error[:400]}"
            )
        if rc == 1 and rec.faults and cause is not None:
            return f"fault-exit:{cause}"
        tail = "\n".join(rec.stderr.splitlines()[-15:])
        raise self.fail(
            f"run {rec.index} ended unexpectedly: exit {rc} after {rec.sent or 'no signal'}, "
            f"{rec.faults} fault(s) injected while it ran.\nstderr tail:\n{tail}"
        )

    # -- the whole seed -------------------------------------------------------

    async def main(self, chain: ScriptedChain, database_url: str) -> Outcome:
        plan = self.plan
        upstream = conninfo_to_dict(database_url)
        host = str(upstream.get("host") or "/tmp")
        port = int(upstream.get("port") or 5432)
        self.started = trio.current_time()
        begun = time.monotonic()
        async with (
            open_rpc_server(chain) as server,
            open_db_proxy(
                host,
                port,
                random.Random(f"db-{plan.seed}"),
                plan.drop_rate,
                other_drop_rate=plan.other_drop_rate,
            ) as proxy,
            trio.open_nursery() as nursery,
        ):
            project = make_rpc_project(
                self.workdir,
                self.schema,
                server.url,
                end_block=plan.final_head,
                max_reorg_depth=WINDOW,
                poll_interval=0.05,
            )
            command = [
                sys.executable, "-m", "indexer", "run", str(project), "--no-progress",
                "--db-retry-seconds", f"{plan.db_retry_seconds:g}",
                *(["--debug"] if self.cli_debug else []),
            ]  # fmt: skip
            env = {
                **os.environ,
                "INDEXER_DATABASE_URL": proxy.conninfo(database_url),
                "INDEXER_TARGET_IN_MEMORY_ENTITIES": str(plan.target),
            }
            nursery.start_soon(self.produce, chain)
            nursery.start_soon(self.chaos, server, proxy)
            nursery.start_soon(self.calm_down, server, proxy)
            pending = list(plan.interruptions)
            for index in range(1, MAX_RUNS + 1):
                planned = pending.pop(0) if pending else None
                if planned is None:
                    self.runs_planned_done.set()
                rec = await self.run_once(index, planned, command, env, server, proxy)
                self.check_prefix(chain, f"run {index} ({rec.verdict})")
                if rec.verdict == "done":
                    break
            else:
                raise self.fail(f"no run finished after {MAX_RUNS} runs")
            nursery.cancel_scope.cancel()
            self.outcome.db_stats = dict(proxy.stats)
        self.outcome.rpc_failures = self.rpc_failures
        self.final_checks(chain)
        self.outcome.seconds = time.monotonic() - begun
        return self.outcome

    def final_checks(self, chain: ScriptedChain) -> None:
        plan = self.plan
        final = plan.final_head
        state = self.progress()
        if state is None or state[0] != final:
            raise self.fail(f"progress is {state}, expected block {final}")
        got, want = tables(self.url, self.schema), expected(chain, final)
        if got != want:
            raise self.fail(f"tables differ from the final canonical chain: {_diff(got, want)}")
        hashes = self.stored_hashes()
        stale = [(b, h) for _i, b, h in hashes if chain.block(b).hash != h]
        if stale:
            raise self.fail(f"stored block hashes not on the canonical chain: {stale[:5]}")
        blocks = [b for _i, b, _h in hashes]
        if blocks != sorted(set(blocks)):
            raise self.fail(f"checkpoint rows out of order or repeated: {blocks}")
        events = len(chain.logs(1, final, topic0s=[TRANSFER]))
        if state[1] != events:
            raise self.fail(f"events_processed is {state[1]}, the canonical chain has {events}")
        # Each reorg of committed blocks was rolled back by a run alive after it.
        rolled: list[tuple[float, int]] = []  # (run end, block kept)
        for r in self.outcome.runs:
            rolled.extend((r.ended, int(b)) for b in ROLLED_BACK.findall(r.stderr))
        self.outcome.rollbacks = len(rolled)
        for reorg in self.outcome.reorgs:
            if reorg.committed is None or reorg.committed < reorg.fork:
                continue
            if any(end >= reorg.at and kept < reorg.fork for end, kept in rolled):
                continue
            # A SIGKILL right after the rollback's COMMIT loses its log line.
            if any(r.sent == "SIGKILL" and r.ended >= reorg.at for r in self.outcome.runs):
                continue
            raise self.fail(
                f"the reorg of depth {reorg.depth} replacing committed blocks from {reorg.fork} "
                f"(committed {reorg.committed}) was never logged as rolled back"
            )


def _find_failure(exc: BaseException) -> SimulationFailure | None:
    if isinstance(exc, SimulationFailure):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _find_failure(sub)
            if found is not None:
                return found
    return None


def _calls(server: RpcServer, method: str) -> int:
    return sum(server.calls.values()) if method == "*" else server.calls[method]


def _diff(got: Any, want: Any) -> str:
    parts = []
    for name, g, w in zip(("account", "token"), got, want, strict=True):
        keys = sorted(set(g) | set(w))
        bad = [(k, g.get(k), w.get(k)) for k in keys if g.get(k) != w.get(k)]
        if bad:
            parts.append(f"{name}: {len(bad)} rows differ, e.g. (id, got, want) {bad[:3]}")
    return "; ".join(parts) or "(no difference?)"


def make_chain(plan: Plan) -> ScriptedChain:
    from indexer.testing import ScriptedChain

    rng = random.Random(f"genesis-{plan.seed}")
    return ScriptedChain(1, head=plan.head0, logs=random_logs(rng, range(1, plan.head0 + 1)))


def _drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


async def simulate(
    seed: int,
    database_url: str,
    workdir: Path,
    *,
    log: Callable[[str], object] | None = None,
    cli_debug: bool = False,
) -> Outcome:
    """Run seed ``seed`` against ``database_url``; raise :class:`SimulationFailure` on a violation.

    ``workdir`` receives the project and every run's stdout/stderr.  The
    schema is dropped after a success and kept after a failure.  ``cli_debug``
    runs the CLI with ``--debug`` (tracebacks in the runs' stderr).
    """
    plan = make_plan(seed)
    schema = f"sim_{seed}_{os.getpid()}"
    await trio.to_thread.run_sync(partial(workdir.mkdir, parents=True, exist_ok=True))
    await trio.to_thread.run_sync(_drop_schema, database_url, schema)
    sim = _Sim(plan, database_url, schema, workdir, log, cli_debug)
    if log is not None:
        log(f"seed {seed}: {plan.describe()}")
    try:
        with trio.fail_after(600):
            outcome = await sim.main(make_chain(plan), database_url)
    except BaseExceptionGroup as group:
        # Raised inside the harness's nursery: hand the failure itself to the caller.
        failure = _find_failure(group)
        if failure is None:
            raise
        raise failure from None
    await trio.to_thread.run_sync(_drop_schema, database_url, schema)
    return outcome
