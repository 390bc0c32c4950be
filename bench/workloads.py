"""Benchmark workloads: deterministic ``.jsonl.gz`` log files built from the real mainnet sample.

Every workload file holds only the logs its project subscribes to, so that about one
line is one event for the framework and for the floor alike.

* ``erc20-balances``: the sample's 7,800 Transfer-topic logs (7,430 ERC20-shaped, 370
  ERC721-shaped, which the wildcard contract skips), replayed K times.  Replay ``k``
  shifts every block number by ``51 * k`` and replaces each transaction hash by
  ``sha256(k, original hash)`` (replay 0 is the real data, untouched); addresses, tokens,
  values and log indexes are kept.  The file stops after ``events`` ERC20-shaped logs.
* ``uniswap-v2``: the sample's 1,316 UniswapV2 ``Sync`` and 1,287 ``Swap`` logs,
  replayed the same way, ``events`` logs in all.
* ``erc20-unique``: synthetic ERC20 Transfers (3 topics, one data word), blocks of 150
  logs from block 18,426,253 on, one fresh transaction per log.  The token is drawn from
  the sample's ERC20 token addresses with Zipf weights ``1/rank`` (rank by frequency in
  the sample); ``from`` and ``to`` are drawn independently from 500,000 holders with a
  bounded power law of exponent 1.2 (holder address = blake2b-160 of its rank); the
  value is drawn from the sample's ERC20 values.  Calibrated so that 1,000,000 events
  touch about 500,000 distinct (token, holder) accounts; the generator counts the
  actual number and stores it in the metadata.

Files are cached: ``<work>/<workload>-<events>-v<version>.jsonl.gz`` with a
``.meta.json`` beside it; a file whose metadata matches is reused.

Run: ``python bench/workloads.py [--work-dir DIR] [--events N] WORKLOAD...``
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import hashlib
import itertools
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
SOURCE = (
    ROOT
    / "examples"
    / "erc20"
    / "data"
    / "ethereum_mainnet_all_logs_18426253_18426303.getlogs.jsonl.gz"
)
DEFAULT_WORK_DIR = Path(__file__).resolve().parent / ".work"

FIRST_BLOCK = 18_426_253
SOURCE_BLOCKS = 51  # 18,426,253 ..= 18,426,303
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SYNC = "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1"
SWAP = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"

WORKLOADS = ("erc20-balances", "erc20-unique", "uniswap-v2")
# Bump when the content of a generated file changes: cached files are then rebuilt.
VERSION = 1

# erc20-unique parameters (calibrated: 1M events -> ~500k distinct accounts).
UNIQUE_SEED = 20231022
UNIQUE_HOLDERS = 500_000
UNIQUE_HOLDER_EXPONENT = 1.2
UNIQUE_TOKEN_EXPONENT = 1.0
UNIQUE_BLOCK_LOGS = 150
_PAD = "0x" + "0" * 24


@dataclass
class WorkloadFile:
    """A generated workload file and what is in it."""

    workload: str
    events: int  # logs the project's handlers receive (ERC721-shaped ones excluded)
    path: str
    lines: int  # lines in the file (events + logs the wildcard contract skips)
    skipped: int  # ERC721-shaped Transfer lines (erc20-balances only)
    first_block: int
    last_block: int
    version: int = VERSION
    generate_seconds: float = 0.0
    bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def is_erc20_transfer(log: dict[str, Any]) -> bool:
    """The shape the wildcard ERC20 Transfer decodes: 3 topics, one data word."""
    topics = log["topics"]
    return (
        len(topics) == 3
        and len(log["data"]) == 66
        and topics[1].startswith(_PAD)
        and topics[2].startswith(_PAD)
    )


def _source_logs(topics: frozenset[str]) -> list[dict[str, Any]]:
    out = []
    with gzip.open(SOURCE, "rb") as f:
        for line in f:
            log = orjson.loads(line)
            if log["topics"] and log["topics"][0] in topics:
                out.append(log)
    return out


def _replay(logs: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The sample's ``logs`` again and again: (replay, log) with shifted blocks and fresh tx hashes."""
    for k in itertools.count():
        shift = SOURCE_BLOCKS * k
        fresh: dict[str, str] = {}
        for log in logs:
            if k == 0:
                yield k, log
                continue
            tx = log["transactionHash"]
            new_tx = fresh.get(tx)
            if new_tx is None:
                digest = hashlib.sha256(k.to_bytes(8, "big") + bytes.fromhex(tx[2:])).hexdigest()
                new_tx = fresh[tx] = "0x" + digest
            out = dict(log)
            out["blockNumber"] = hex(int(log["blockNumber"], 16) + shift)
            out["transactionHash"] = new_tx
            yield k, out


def _holder(rank: int) -> str:
    return "0x" + hashlib.blake2b(rank.to_bytes(8, "big"), digest_size=20).hexdigest()


def _unique_logs(events: int, stats: dict[str, Any]) -> Iterator[dict[str, Any]]:
    sample = [log for log in _source_logs(frozenset({TRANSFER})) if is_erc20_transfer(log)]
    counts: dict[str, int] = {}
    for log in sample:
        counts[log["address"]] = counts.get(log["address"], 0) + 1
    tokens = sorted(counts, key=lambda a: (-counts[a], a))
    token_weights = list(
        itertools.accumulate(1.0 / (r**UNIQUE_TOKEN_EXPONENT) for r in range(1, len(tokens) + 1))
    )
    values = [log["data"] for log in sample]
    rng = random.Random(UNIQUE_SEED)
    rnd = rng.random
    # Bounded power law on [1, H+1) by inversion: rank = (a*u + 1)^(1/(1-s)).
    s = UNIQUE_HOLDER_EXPONENT
    a = (UNIQUE_HOLDERS + 1) ** (1 - s) - 1
    e = 1 / (1 - s)
    total = token_weights[-1]
    cache: dict[int, str] = {}
    seen: set[int] = set()
    for i in range(events):
        t = min(bisect.bisect(token_weights, rnd() * total), len(tokens) - 1)
        ends = []
        for _ in range(2):
            h = min(int((a * rnd() + 1) ** e) - 1, UNIQUE_HOLDERS - 1)
            seen.add(t * UNIQUE_HOLDERS + h)
            addr = cache.get(h)
            if addr is None:
                addr = cache[h] = _holder(h)
            ends.append(_PAD + addr[2:])
        block, index = divmod(i, UNIQUE_BLOCK_LOGS)
        if i == events - 1:
            # Before the last yield: the caller stops iterating after it.
            stats["distinct_accounts"] = len(seen)
            stats["distinct_holders"] = len(cache)
            stats["tokens"] = len(tokens)
        yield {
            "address": tokens[t],
            "topics": [TRANSFER, ends[0], ends[1]],
            "data": values[int(rnd() * len(values))],
            "blockNumber": hex(FIRST_BLOCK + block),
            "transactionHash": "0x"
            + hashlib.sha256(b"erc20-unique" + i.to_bytes(8, "big")).hexdigest(),
            "transactionIndex": hex(index),
            "logIndex": hex(index),
            "removed": False,
        }


def _target_path(work_dir: Path, workload: str, events: int) -> Path:
    return work_dir / f"{workload}-{events}-v{VERSION}.jsonl.gz"


def _cached(path: Path, workload: str, events: int) -> WorkloadFile | None:
    meta = path.with_name(path.name + ".meta.json")
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        data = json.loads(meta.read_text())
        wf = WorkloadFile(**data)
    except (ValueError, TypeError):
        return None
    if (
        wf.workload != workload
        or wf.events != events
        or wf.version != VERSION
        or wf.bytes != path.stat().st_size
    ):
        return None
    wf.path = str(path)
    return wf


def generate(workload: str, events: int, work_dir: Path = DEFAULT_WORK_DIR) -> WorkloadFile:
    """The workload file with ``events`` events, generated unless an identical one is cached."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; expected one of {', '.join(WORKLOADS)}")
    if events < 1:
        raise ValueError("events must be positive")
    work_dir.mkdir(parents=True, exist_ok=True)
    path = _target_path(work_dir, workload, events)
    cached = _cached(path, workload, events)
    if cached is not None:
        return cached
    started = time.perf_counter()
    stats: dict[str, Any] = {}
    tmp = path.with_name(path.name + ".tmp")
    n_events = lines = skipped = 0
    first_block = last_block = -1
    replays = 0
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as out,
    ):
        if workload == "erc20-unique":
            source: Iterator[tuple[int, dict[str, Any]]] = (
                (0, log) for log in _unique_logs(events, stats)
            )
        else:
            topics = (
                frozenset({TRANSFER}) if workload == "erc20-balances" else frozenset({SYNC, SWAP})
            )
            source = _replay(_source_logs(topics))
        buf: list[bytes] = []
        for k, log in source:
            if workload == "erc20-balances" and not is_erc20_transfer(log):
                skipped += 1
            else:
                n_events += 1
            replays = k + 1
            lines += 1
            block = int(log["blockNumber"], 16)
            if first_block < 0:
                first_block = block
            last_block = block
            buf.append(orjson.dumps(log))
            if len(buf) >= 10_000:
                out.write(b"\n".join(buf) + b"\n")
                buf = []
            if n_events >= events:
                break
        if buf:
            out.write(b"\n".join(buf) + b"\n")
    if workload != "erc20-unique":
        stats["replays"] = replays
    tmp.replace(path)
    wf = WorkloadFile(
        workload=workload,
        events=n_events,
        path=str(path),
        lines=lines,
        skipped=skipped,
        first_block=first_block,
        last_block=last_block,
        generate_seconds=round(time.perf_counter() - started, 3),
        bytes=path.stat().st_size,
        extra=stats,
    )
    path.with_name(path.name + ".meta.json").write_text(json.dumps(wf.to_json(), indent=1) + "\n")
    return wf


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("workloads", nargs="+", choices=WORKLOADS)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    args = p.parse_args(argv)
    for name in args.workloads:
        wf = generate(name, args.events, args.work_dir)
        print(json.dumps(wf.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
