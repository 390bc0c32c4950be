"""Helpers for tests that run whole projects: project directories and an oracle."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eth_abi.abi import decode as abi_decode
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "erc20"
LOGS = EXAMPLE / "data" / "ethereum_mainnet_all_logs_18426253_18426303.getlogs.jsonl.gz"
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
FIRST_BLOCK, LAST_BLOCK = 18426253, 18426303


def raised(exc: type[BaseException], match: str | None = None) -> pytest.RaisesGroup[Any]:
    """Expect ``exc`` from a run, bare or wrapped in (nested) exception groups.

    Errors raised inside the runtime's nurseries reach the caller either
    alone or inside ExceptionGroups, depending on where they happened.
    """
    return pytest.RaisesGroup(
        pytest.RaisesExc(exc, match=match), flatten_subgroups=True, allow_unwrapped=True
    )


def make_project(
    tmp: Path,
    schema: str,
    *,
    handlers: str | None = None,
    end_block: int | None = LAST_BLOCK,
    extra_contract: str = "",
) -> Path:
    """A copy of the example project writing to ``schema``."""
    project = tmp / "project"
    project.mkdir()
    if handlers is None:
        shutil.copy(EXAMPLE / "handlers.py", project / "handlers.py")
    else:
        (project / "handlers.py").write_text(handlers)
    end = f"    end_block: {end_block}\n" if end_block is not None else ""
    (project / "indexer.yaml").write_text(
        f"name: test-project\n"
        f"handlers: handlers.py\n"
        f"schema: {schema}\n"
        f"chains:\n"
        f"  - id: 1\n"
        f"    start_block: {FIRST_BLOCK}\n"
        f"{end}"
        f"    source:\n"
        f"      file: {LOGS}\n"
        f"    contracts:\n"
        f"      - name: ERC20\n"
        f'        events: ["event Transfer(address indexed from, address indexed to, uint256 value)"]\n'
        f"{extra_contract}"
    )
    return project


def expected_balances(last_block: int = LAST_BLOCK) -> dict[str, tuple[int, int]]:
    """(balance, transfers) per "<token>-<holder>", computed straight from the file with eth-abi."""
    out: dict[str, tuple[int, int]] = {}
    with gzip.open(LOGS, "rt") as f:
        for line in f:
            log = json.loads(line)
            topics = log["topics"]
            if not topics or topics[0] != TRANSFER or int(log["blockNumber"], 16) > last_block:
                continue
            data = bytes.fromhex(log["data"][2:])
            if len(topics) != 3 or len(data) != 32:
                continue  # ERC721 and other shapes sharing the topic0
            (value,) = abi_decode(["uint256"], data)
            sender = "0x" + topics[1][-40:]
            receiver = "0x" + topics[2][-40:]
            token = log["address"].lower()
            for holder, delta in ((sender, -value), (receiver, value)):
                key = f"{token}-{holder}"
                balance, count = out.get(key, (0, 0))
                out[key] = (balance + delta, count + 1)
    return out


def table_rows(
    url: str, schema: str, query: str = "SELECT id, balance, transfers FROM {}.account"
) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(sql.SQL(query).format(sql.Identifier(schema))).fetchall()
    return {r[0]: tuple(int(x) for x in r[1:]) for r in rows}


def leaf(exc: BaseException) -> BaseException:
    """The first non-group exception inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
