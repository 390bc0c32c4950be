"""CI entry of the simulation: a fixed set of seeds, each a few restarts of the real CLI.

Every seed must end with tables equal to the state computed from the final
canonical chain (see ``_harness.py``).  Run more seeds locally with
``python -m tests.sim --seeds 200`` (docs/simulation.md).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import psycopg
import pytest
import trio
from psycopg.conninfo import conninfo_to_dict

from ._harness import simulate
from ._proxy import open_db_proxy

if TYPE_CHECKING:
    from pathlib import Path

CI_SEEDS = range(20)
# A seed mostly waits on real time (a chain growing every 20-50 ms, runs
# killed and started on a schedule): alone it keeps a quarter of a core busy.
# CI plays four at once; each has its own schema, proxy and node, and timing
# differences only change the interleavings, which every seed must survive.
AT_ONCE = 4
GROUPS = [CI_SEEDS[i : i + AT_ONCE] for i in range(0, len(CI_SEEDS), AT_ONCE)]


@pytest.mark.parametrize("seeds", GROUPS, ids=lambda group: f"{group[0]}-{group[-1]}")
async def test_simulation(seeds: range, database_url: str, tmp_path: Path) -> None:
    summaries: dict[int, str] = {}

    async def play(seed: int) -> None:
        lines: list[str] = []
        try:
            outcome = await simulate(seed, database_url, tmp_path / f"sim-{seed}", log=lines.append)
            summaries[seed] = outcome.summary()
        finally:
            print("\n".join(lines))

    async with trio.open_nursery() as nursery:
        for seed in seeds:
            nursery.start_soon(play, seed)
    assert sorted(summaries) == list(seeds)
    print("\n".join(summaries[seed] for seed in seeds))


def _round_trips(url: str, count: int) -> tuple[int, int]:
    """(successes, failures) of ``count`` connections that write, COPY, commit and read back."""
    ok = failed = 0
    for i in range(count):
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, v text)")
                with conn.transaction(), conn.cursor().copy("COPY t FROM STDIN") as copy:
                    for j in range(50):
                        copy.write_row((j, f"{i}-{j}-" + "x" * 500))
                rows = conn.execute("SELECT count(*), sum(length(v)) FROM t").fetchone()
                assert rows is not None
                assert rows[0] == 50
                assert rows[1] == sum(len(f"{i}-{j}-") + 500 for j in range(50))
            ok += 1
        except psycopg.OperationalError:
            failed += 1
    return ok, failed


async def test_the_proxy_forwards_faithfully_and_only_closes(database_url: str) -> None:
    params = conninfo_to_dict(database_url)
    host, port = str(params.get("host") or "/tmp"), int(params.get("port") or 5432)
    async with open_db_proxy(host, port, random.Random(0), 0.0) as proxy:
        url = proxy.conninfo(database_url)
        assert await trio.to_thread.run_sync(_round_trips, url, 5) == (5, 0)
        proxy.drop_rate = proxy.other_drop_rate = 0.2
        ok, failed = await trio.to_thread.run_sync(_round_trips, url, 20)
        # Faults end connections (OperationalError); a surviving one reads back exactly.
        assert failed > 0
        assert ok + failed == 20
        assert proxy.faults > 0
        proxy.down(60)
        assert await trio.to_thread.run_sync(_round_trips, url, 2) == (0, 2)
        proxy.enabled = False
        assert await trio.to_thread.run_sync(_round_trips, url, 2) == (2, 0)
