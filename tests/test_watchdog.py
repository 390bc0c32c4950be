"""The stall watchdog: on Trio's mock clock, then wired into a real run whose node stops answering."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio
import trio.testing

from indexer import Metrics, RunStatus
from indexer.runtime import Watchdog
from indexer.testing import open_rpc_server

from ._chains import expected, make_rpc_project, run, scripted_chain, tables

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _gauge(metrics: Metrics, chain: int) -> float | None:
    return metrics.registry.get_sample_value("indexer_stalled", {"chain_id": str(chain)})


class _Session:
    """Stands in for a RetryingSession's two observable fields (the watchdog reads only those)."""

    current: str | None = None
    attempt = 0


def test_a_stall_is_reported_once_with_what_the_run_waits_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    metrics = Metrics()
    committed = {1: 10, 2: 50}
    heads = {1: 20, 2: 50}  # chain 2 is caught up: standing still is right for it
    writer = _Session()
    dog = Watchdog(
        60.0,
        ends={1: None, 2: None},
        heads=heads,
        committed=lambda: committed,
        doing=lambda: "the writer (memory is over its target, or --sync-writes)",
        sessions=(("the writer", writer),),  # type: ignore[arg-type]
        metrics=metrics,
    )
    seen: list[tuple[float, dict[int, float | None]]] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(dog.serve)
            for at in (30, 59, 61, 90, 200):
                await trio.sleep_until(at)
                if at == 61:
                    writer.current, writer.attempt = "the write of checkpoints 4..6", 3
                seen.append((at, {c: _gauge(metrics, c) for c in (1, 2)}))
            committed[1] = 11  # it moves again
            await trio.sleep(10)
            seen.append((trio.current_time(), {c: _gauge(metrics, c) for c in (1, 2)}))
            nursery.cancel_scope.cancel()

    with caplog.at_level(logging.WARNING, logger="indexer.runtime"):
        trio.run(main, clock=clock)
    assert [g for _t, g in seen] == [
        {1: 0.0, 2: 0.0},
        {1: 0.0, 2: 0.0},
        {1: 1.0, 2: 0.0},
        {1: 1.0, 2: 0.0},
        {1: 1.0, 2: 0.0},
        {1: 0.0, 2: 0.0},
    ]
    warnings = [r.getMessage() for r in caplog.records]
    stalled = [w for w in warnings if "stalled" in w]
    assert len(stalled) == 1  # once per episode, not once per check
    assert "chain 1: stalled: the committed block (10) has not moved for 6" in stalled[0]
    assert "waiting on the writer (memory is over its target" in stalled[0]
    assert warnings[-1] == "chain 1: committing again (block 11)"
    assert dog.stalls == {}


def test_a_chain_at_its_end_or_caught_up_is_not_behind() -> None:
    dog = Watchdog(
        1.0,
        ends={1: 100, 2: None, 3: None},
        heads={2: 40},
        committed=dict,
        doing=lambda: "",
        metrics=Metrics(),
    )
    assert dog.behind(1, 99)
    assert not dog.behind(1, 100)
    assert dog.behind(2, 39)
    assert not dog.behind(2, 40)
    assert dog.behind(3, 7)  # a file without end: behind until the run ends


async def test_a_node_that_keeps_failing_is_reported_then_the_run_completes(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """Wiring: the gauge and the status say "stalled" while eth_getLogs fails and is retried."""
    chain, _rng = scripted_chain(21, head=30)
    statuses: list[RunStatus] = []
    first_part = trio.Event()
    metrics = Metrics()

    def report(status: RunStatus) -> None:
        statuses.append(status)
        if status.chains[0].committed_block >= 30:
            first_part.set()

    async with open_rpc_server(chain) as node:
        project = make_rpc_project(tmp_path, schema, node.url, end_block=60)
        async with trio.open_nursery() as nursery:

            async def trouble() -> None:
                # Once the first blocks are committed, new blocks arrive but
                # eth_getLogs fails 7 times in a row (fewer than the client's
                # 8 attempts), sleeping up to 0.3 s (jittered) between them:
                # they last longer than --stall-seconds but for one chance in
                # thousands (7 uniform draws summing under 0.3 s: 1/5040).
                await first_part.wait()
                node.fail("eth_getLogs", 7, kind="http_503")
                chain.advance(30)

            nursery.start_soon(trouble)
            summary = await run(
                project,
                database_url,
                reporter=report,
                report_interval=0.02,
                stall_seconds=0.2,
                metrics=metrics,
                rpc_tuning={"client_options": {"backoff_base": 0.3, "backoff_cap": 0.3}},
            )
    stalls = [s for status in statuses for s in status.stalls]
    assert stalls
    assert all(s.chain_id == 1 and s.block == 30 for s in stalls)
    assert "the sources" in stalls[0].waiting_on
    assert summary.chains[1][0] == 60
    assert _gauge(metrics, 1) == 0.0  # cleared once it moved on
    assert tables(database_url, schema) == expected(chain, 60)
