"""The HTTP API served for real (Hypercorn on a free loopback port) over real PostgreSQL.

The runs are the real runtime following the scripted chain server, with
reorgs; what the API answers is compared with an independent fold of the
final canonical chain (``tests/_chains.py``) and with what the run did.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import orjson
import trio

from indexer.testing import open_rpc_server

from .._chains import CommitWatch, expected, make_rpc_project, replace_logs, run, scripted_chain
from ._serving import SseReader, gql, serving

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from indexer import RunSummary

ACCOUNTS = "{ accounts(limit: 1000) { totalCount items { id token balance } } }"


def _balances_by_token(items: list[dict[str, Any]]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for item in items:
        sums[item["token"]] += int(item["balance"])
    return dict(sums)


async def _check_snapshot(client: httpx.AsyncClient) -> int:
    """One read while the writer commits: a consistent snapshot, or the test fails.

    Transfers move value between holders, so at every committed checkpoint
    each token's balances sum to zero; a read mixing two commits would not.
    """
    data = await gql(client, ACCOUNTS)
    page = data["accounts"]
    assert len(page["items"]) == page["totalCount"]
    assert all(v == 0 for v in _balances_by_token(page["items"]).values())
    r = await client.post(
        "/sql",
        json={"sql": "SELECT count(*) AS n, coalesce(sum(balance), 0) AS s FROM account"},
    )
    assert r.status_code == 200, r.text
    ((n, s),) = orjson.loads(r.content)["rows"]
    assert int(s) == 0
    return int(n)


async def test_a_run_with_reorgs_seen_through_the_api(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """Readiness, status, live events and consistent reads while a run follows a reorging chain."""
    chain, rng = scripted_chain(7, head=20)
    end = 60
    async with open_rpc_server(chain) as node:
        project = make_rpc_project(tmp_path, schema, node.url, end_block=end, max_reorg_depth=10)
        async with serving(project, database_url) as client:
            r = await client.get("/health")
            assert r.status_code == 200
            assert r.json()["status"] == "ok"
            r = await client.get("/ready")
            assert r.status_code == 503
            assert r.json() == {
                "ready": False,
                "waiting": [{"chain_id": 1, "reason": "nothing committed yet"}],
            }
            sse = SseReader()
            watch = CommitWatch()
            done: list[RunSummary] = []
            reads = refused = 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sse.run, client)
                await sse.connected.wait()

                async def indexer() -> None:
                    done.append(
                        await run(project, database_url, reporter=watch, report_interval=0.01)
                    )

                async def reader() -> None:
                    nonlocal reads
                    await watch.wait_for(1)  # the tables exist from the first commit on
                    while not done:
                        await _check_snapshot(client)
                        reads += 1
                        await trio.sleep(0.01)

                async def hostile() -> None:
                    # Failing requests while the run indexes: each is refused,
                    # and the run's tables below still equal the fold.
                    nonlocal refused
                    await watch.wait_for(1)
                    while not done:
                        r = await client.post(
                            "/graphql", json={"query": "{ accounts(limit: 5000) { totalCount } }"}
                        )
                        assert "limit" in r.text
                        r = await client.post("/sql", json={"sql": "DROP TABLE account"})
                        assert r.status_code == 400
                        r = await client.post("/graphql", content=b"{garbage")
                        assert r.status_code == 400
                        refused += 3
                        await trio.sleep(0.01)

                async with trio.open_nursery() as run_nursery:
                    run_nursery.start_soon(indexer)
                    run_nursery.start_soon(reader)
                    run_nursery.start_soon(hostile)
                    for depth in (2, 5, 3):
                        await watch.wait_for(chain.head)
                        chain.reorg(depth, replace_logs(rng, chain, depth))
                        chain.advance(6, {n: [] for n in range(chain.head + 1, chain.head + 7)})
                    await watch.wait_for(chain.head)
                    chain.advance(end - chain.head)
                # The last commit's event may still be on its way.
                await sse.wait_for(("commit", 1, end))
                nursery.cancel_scope.cancel()
            (summary,) = done
            assert reads > 0
            assert refused > 0

            # Events: commits in increasing block order, a reorg event after
            # each rollback with the block it went back to, in order.
            reorgs = [(b, i) for i, (k, _c, b) in enumerate(sse.events) if k == "reorg"]
            assert [b for b, _i in reorgs] == [b for _c, b, _r, _s in summary.rollbacks]
            last = -1
            for kind, chain_id, block in sse.events:
                assert chain_id == 1
                if kind == "commit":
                    assert block > last, sse.events
                last = block

            r = await client.get("/ready")
            assert r.status_code == 200
            assert r.json() == {"ready": True}
            status = (await client.get("/status")).json()
            (c,) = status["chains"]
            assert c["committed_block"] == end
            assert c["end_block"] == end
            assert c["head_block"] >= end
            assert c["events_processed"] == summary.chains[1][1]

            # The API's answers equal an independent fold of the canonical chain.
            accounts, tokens = expected(chain, end)
            data = await gql(client, ACCOUNTS)
            got = {i["id"]: int(i["balance"]) for i in data["accounts"]["items"]}
            assert got == {k: v[0] for k, v in accounts.items()}
            data = await gql(client, "{ _meta { chains { chainId block } } }")
            assert data["_meta"]["chains"] == [{"chainId": "1", "block": str(end)}]
            top = await gql(
                client,
                '{ accounts(orderBy: "balance", orderDirection: "desc", limit: 3)'
                " { items { id balance } } }",
            )
            want = sorted(accounts.items(), key=lambda kv: (kv[1][0], kv[0]), reverse=True)[:3]
            assert [(i["id"], int(i["balance"])) for i in top["accounts"]["items"]] == [
                (k, v[0]) for k, v in want
            ]
            assert tokens  # the chain moved tokens at all
