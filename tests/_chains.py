"""Synthetic token chains for reorg tests: logs, a project that follows them, an oracle."""

from __future__ import annotations

import importlib.util
import random
import reprlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import trio
from psycopg import sql

from indexer import RunOptions, RunStatus, RunSummary, load_config, load_handlers, run_project
from indexer.testing import LogSpec, ScriptedChain

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TOKENS = ("0x" + "a1" * 20, "0x" + "b2" * 20)
HOLDERS = tuple("0x" + f"{i:040x}" for i in range(1, 7))

# The handler (balances deleted at zero, so rollbacks restore deleted rows and
# remove created ones; a live `find` index) and its oracle live with the
# rollback benchmark, which runs them too.  Loaded by path, as bench/ is a
# directory of scripts, not a package.
_PROJECT = Path(__file__).resolve().parent.parent / "bench" / "projects" / "token_holders"
HANDLERS = (_PROJECT / "handlers.py").read_text()


def _load_oracle() -> Any:
    spec = importlib.util.spec_from_file_location("token_holders_oracle", _PROJECT / "oracle.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fold = _load_oracle().fold


def transfer_log(rng: random.Random) -> LogSpec:
    sender, receiver = rng.sample(HOLDERS, 2)
    return LogSpec(
        rng.choice(TOKENS),
        (TRANSFER, "0x" + sender[2:].rjust(64, "0"), "0x" + receiver[2:].rjust(64, "0")),
        "0x" + f"{rng.randint(1, 3):064x}",
    )


def random_logs(
    rng: random.Random, blocks: Sequence[int], per_block: int = 3
) -> dict[int, list[LogSpec]]:
    return {n: [transfer_log(rng) for _ in range(rng.randint(0, per_block))] for n in blocks}


def make_rpc_project(
    tmp: Path,
    schema: str,
    url: str | Sequence[str],
    *,
    end_block: int | None,
    max_reorg_depth: int = 10,
    poll_interval: float = 0.02,
    start_block: int = 1,
    chain_id: int = 1,
    name: str = "project",
    raw_events: bool = False,
) -> Path:
    project = tmp / name
    project.mkdir(exist_ok=True)
    (project / "handlers.py").write_text(HANDLERS)
    end = f"    end_block: {end_block}\n" if end_block is not None else ""
    # A list of URLs is a chain with several nodes (failover).
    rpc = f"'{url}'" if isinstance(url, str) else "[" + ", ".join(f"'{u}'" for u in url) + "]"
    (project / "indexer.yaml").write_text(
        f"name: reorg-test\n"
        f"handlers: handlers.py\n"
        f"raw_events: {'true' if raw_events else 'false'}\n"
        f"schema: {schema}\n"
        f"chains:\n"
        f"  - id: {chain_id}\n"
        f"    start_block: {start_block}\n"
        f"{end}"
        f"    max_reorg_depth: {max_reorg_depth}\n"
        f"    source: {{rpc: {rpc}, poll_interval: {poll_interval}}}\n"
        f"    contracts:\n"
        f"      - name: Token\n"
        f'        events: ["event Transfer(address indexed from, address indexed to, uint256 value)"]\n'
    )
    return project


def set_end_block(project: Path, end_block: int) -> None:
    path = project / "indexer.yaml"
    lines = [ln for ln in path.read_text().splitlines() if "end_block" not in ln]
    at = next(i for i, ln in enumerate(lines) if "start_block" in ln) + 1
    lines.insert(at, f"    end_block: {end_block}")
    path.write_text("\n".join(lines) + "\n")


async def run(project: Path, url: str, **options: Any) -> RunSummary:
    config = load_config(project)
    handlers = load_handlers(config)
    tuning = options.pop("rpc_tuning", {})
    client = {"backoff_base": 0.01, "backoff_cap": 0.05, **tuning.pop("client_options", {})}
    opts = RunOptions(
        database_url=url,
        handle_signals=False,
        write_interval=0.0,
        rpc_tuning={"client_options": client, **tuning},
        **options,
    )
    return await run_project(config, handlers, opts)


class CommitWatch:
    """A run's reporter that lets a test wait until a block is committed."""

    def __init__(self) -> None:
        self.block = -1
        self._changed = trio.Event()

    def __call__(self, status: RunStatus) -> None:
        block = status.chains[0].committed_block
        if block != self.block:
            self.block = block
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, block: int) -> None:
        with trio.fail_after(30):
            while self.block < block:
                await self._changed.wait()


def expected(
    chain: ScriptedChain, last: int | None = None, first: int = 1
) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """(accounts, tokens) computed straight from the chain's canonical logs."""
    last = chain.head if last is None else last
    balances, tokens = fold(chain.logs(first, last, topic0s=[TRANSFER]))
    return balances, tokens


def tables(url: str, schema: str) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    with psycopg.connect(url) as conn:
        accounts = conn.execute(
            sql.SQL("SELECT id, balance, transfers FROM {}.account").format(sql.Identifier(schema))
        ).fetchall()
        tokens = conn.execute(
            sql.SQL("SELECT id, holders, last_block FROM {}.token").format(sql.Identifier(schema))
        ).fetchall()
    return (
        {r[0]: (int(r[1]), int(r[2])) for r in accounts},
        {r[0]: (int(r[1]), int(r[2])) for r in tokens},
    )


def progress(url: str, schema: str, chain_id: int = 1) -> int | None:
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"._indexer_chains',)).fetchone()
        if exists is None or exists[0] is None:
            return None
        row = conn.execute(
            sql.SQL("SELECT progress_block FROM {}._indexer_chains WHERE chain_id = %s").format(
                sql.Identifier(schema)
            ),
            (chain_id,),
        ).fetchone()
    return None if row is None else int(row[0])


def framework_rows(url: str, schema: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.SQL(query).format(sql.Identifier(schema))).fetchall()


def scripted_chain(seed: int, head: int, **kw: Any) -> tuple[ScriptedChain, random.Random]:
    rng = random.Random(seed)
    chain = ScriptedChain(1, head=head, logs=random_logs(rng, range(1, head + 1)), **kw)
    return chain, rng


def replace_logs(
    rng: random.Random, chain: ScriptedChain, depth: int
) -> Mapping[int, list[LogSpec]]:
    return random_logs(rng, range(chain.head - depth + 1, chain.head + 1))


RAW_COLUMNS = (
    "block_number, log_index, transaction_hash, block_hash, address, topics, data, event, params"
)


def raw_rows(chain: ScriptedChain) -> list[tuple[Any, ...]]:
    """The ``_indexer_raw_events`` rows of the chain's canonical Transfers (``RAW_COLUMNS``)."""
    out: list[tuple[Any, ...]] = []
    for lg in chain.logs(1, chain.head, topic0s=[TRANSFER]):
        topics = lg["topics"]
        params = {
            "from": "0x" + topics[1][-40:],
            "to": "0x" + topics[2][-40:],
            "value": int(lg["data"], 16),
        }
        out.append(
            (
                int(lg["blockNumber"], 16),
                int(lg["logIndex"], 16),
                lg["transactionHash"],
                lg["blockHash"],
                lg["address"],
                topics,
                lg["data"],
                "Token.Transfer",
                params,
            )
        )
    return out


def stored_raw(url: str, schema: str) -> list[tuple[Any, ...]]:
    """``RAW_COLUMNS`` and the checkpoint of every stored raw event, in chain order."""
    return framework_rows(
        url,
        schema,
        f"SELECT {RAW_COLUMNS}, checkpoint FROM {{}}._indexer_raw_events"
        " ORDER BY block_number, log_index, checkpoint",
    )


def stored_checkpoints(url: str, schema: str) -> list[tuple[Any, ...]]:
    """(id, chain, block, hash, events) of every stored checkpoint row, by id."""
    return framework_rows(
        url,
        schema,
        "SELECT id, chain_id, block_number, block_hash, events FROM {}._indexer_checkpoints"
        " ORDER BY id, block_number",
    )


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 120
_short.maxlist = _short.maxtuple = _short.maxdict = 12


def assert_same(what: str, got: Any, want: Any) -> None:
    """``assert got == want`` with a short message naming the first difference.

    The rows compared are long (hundreds of raw events); a full diff would
    bury the shrunk counterexample printed below it.
    """
    if got == want:
        return
    if isinstance(got, dict) and isinstance(want, dict):
        keys = sorted(
            got.keys() ^ want.keys() | {k for k in got.keys() & want.keys() if got[k] != want[k]}
        )
        where = "; ".join(
            f"{k!r}: {_short.repr(got.get(k, '<none>'))} != {_short.repr(want.get(k, '<none>'))}"
            for k in keys[:3]
        )
        raise AssertionError(f"{what} differ at {len(keys)} keys: {where}")
    if isinstance(got, (list, tuple)) and isinstance(want, (list, tuple)):
        i = next(
            (i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w),
            min(len(got), len(want)),
        )
        g = got[i] if i < len(got) else "<none>"
        w = want[i] if i < len(want) else "<none>"
        raise AssertionError(
            f"{what} differ ({len(got)} rows, {len(want)} wanted) first at {i}: "
            f"{_short.repr(g)} != {_short.repr(w)}"
        )
    raise AssertionError(f"{what}: {_short.repr(got)} != {_short.repr(want)}")
