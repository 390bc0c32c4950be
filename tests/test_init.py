"""``indexer init`` and ``indexer codegen``, as real processes on real files.

A project made by ``init`` must run at once (``indexer run``), its generated
test must pass, and ``mypy --strict`` must accept its handlers and reject a
misspelt or mistyped parameter.  Against the shared mainnet log file, the
scripted RPC chain, and an ABI with overloads, tuples, arrays and indexed
dynamic types.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import trio
from eth_hash.auto import keccak
from psycopg import sql

import indexer as indexer_package
from indexer.testing import HandlerHarness, ScriptedChain, encode_log, make_log, open_rpc_server

from ._projects import FIRST_BLOCK, LAST_BLOCK, LOGS

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

    from indexer import Event
    from indexer.sources import RawLog

MIX_ABI = Path(__file__).resolve().parent / "contracts" / "events_mix.abi.json"
ERC20_SIGNATURES = (
    "event Transfer(address indexed from, address indexed to, uint256 value)\n"
    "# comments and blank lines are ignored\n\n"
    "event Approval(address indexed owner, address indexed spender, uint256 value)\n"
)
TOKEN = "0x" + "a0" * 20
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b1" * 20


def indexer(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m indexer ARGS`` with stdin not a terminal (so init never asks)."""
    return subprocess.run(
        [sys.executable, "-m", "indexer", *args],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def tool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def mypy(*files: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` on a project's files, against the ``indexer`` these tests import.

    mypy does not read PYTHONPATH: without MYPYPATH it would check against
    whatever ``indexer`` the interpreter has installed, which may be another
    checkout.  ``silent`` keeps errors to the project's own files, as for an
    installed package.  The cache is the projects directory's own (not the
    user's): the first call analyses ``indexer``, later ones only what changed.
    """
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(cwd.parent / ".mypy_cache"),
            "--follow-imports=silent",
            *files,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, "MYPYPATH": str(Path(indexer_package.__file__).resolve().parents[1])},
    )


@pytest.fixture
def projects(tmp_path: Path, database_url: str) -> Iterator[Path]:
    """A directory for projects; their schemas (named after them) are dropped afterwards."""
    root = tmp_path / "projects"
    root.mkdir()
    yield root
    with psycopg.connect(database_url, autocommit=True) as conn:
        for project in root.iterdir():
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(project.name.replace("-", "_"))
                )
            )


def _name(tag: str) -> str:
    return f"init_{tag}_{os.getpid()}"


def _count(url: str, schema: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
        ).fetchone()
    assert row is not None
    return int(row[0])


def _check_generated(project: Path) -> None:
    """The generated test passes, mypy --strict accepts the project, ruff finds it formatted."""
    test = tool("pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=project)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "1 passed" in test.stdout
    typed = mypy("handlers.py", "tests", cwd=project)
    assert typed.returncode == 0, typed.stdout + typed.stderr
    formatted = tool("ruff", "format", "--check", "--no-cache", ".", cwd=project)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


# -- a project from the shared real logs ------------------------------------------


def test_init_on_the_mainnet_log_file_runs_at_once(
    projects: Path, database_url: str, tmp_path: Path
) -> None:
    signatures = tmp_path / "erc20.sol.txt"
    signatures.write_text(ERC20_SIGNATURES)
    project = projects / _name("file")
    out = indexer(
        "init",
        str(project),
        "--abi",
        str(signatures),
        "--contract",
        "ERC20",
        "--file",
        str(LOGS),
        "--start-block",
        str(FIRST_BLOCK),
        "--end-block",
        str(LAST_BLOCK),
    )
    assert out.returncode == 0, out.stderr
    assert f"created {project}: 2 events of ERC20" in out.stdout
    assert sorted(p.name for p in project.iterdir()) == [
        ".gitignore",
        "README.md",
        "handlers.py",
        "indexer.yaml",
        "indexer_types.py",
        "tests",
    ]
    run = indexer("run", str(project), "--no-progress", env={"INDEXER_DATABASE_URL": database_url})
    assert run.returncode == 0, run.stderr
    # The example's numbers: 7,430 ERC20 Transfers and 1,251 Approvals fit the ABI.
    assert "done: 8,681 events" in run.stdout
    schema = project.name
    assert _count(database_url, schema, "erc20_transfer") == 7430
    assert _count(database_url, schema, "erc20_approval") == 1251
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT id, block_number, log_index, transaction_hash, from_, value FROM {} "
                "ORDER BY block_number, log_index LIMIT 1"
            ).format(sql.Identifier(schema, "erc20_transfer"))
        ).fetchone()
    assert row is not None
    assert row[0] == f"{row[1]}-{row[2]}"
    assert row[3].startswith("0x")
    assert len(row[3]) == 66
    _check_generated(project)


# -- a project from the scripted RPC chain -------------------------------------------


async def test_init_on_the_scripted_rpc_chain_fills_the_chain_id_and_runs(
    projects: Path, database_url: str, tmp_path: Path
) -> None:
    signatures = tmp_path / "erc20.txt"
    signatures.write_text(ERC20_SIGNATURES)
    transfer = "event Transfer(address indexed from, address indexed to, uint256 value)"
    chain = ScriptedChain(
        137,
        head=30,
        logs={
            3: [encode_log(transfer, {"from": ALICE, "to": BOB, "value": 5}, address=TOKEN)],
            9: [
                encode_log(transfer, {"from": BOB, "to": ALICE, "value": 2}, address=TOKEN),
                encode_log(transfer, {"from": BOB, "to": ALICE, "value": 1}, address=BOB),
            ],
        },
    )
    project = projects / _name("rpc")
    async with open_rpc_server(chain) as server:
        wrong = await trio.to_thread.run_sync(
            lambda: indexer(
                "init",
                str(project),
                "--abi",
                str(signatures),
                "--rpc",
                server.url,
                "--chain-id",
                "1",
            )
        )
        assert wrong.returncode == 1
        assert "--chain-id 1 does not match the node" in wrong.stderr
        assert "eth_chainId is 137" in wrong.stderr
        assert not project.exists()
        out = await trio.to_thread.run_sync(
            lambda: indexer(
                "init",
                str(project),
                "--abi",
                str(signatures),
                "--rpc",
                server.url,
                "--address",
                TOKEN.upper().replace("0X", "0x"),
                "--start-block",
                "1",
                "--end-block",
                "20",
            )
        )
        assert out.returncode == 0, out.stderr
        config = (project / "indexer.yaml").read_text()
        assert "- id: 137" in config  # from eth_chainId
        assert f'- "{TOKEN}"' in config  # lower-cased
        assert "name: Erc20\n" in config  # from the ABI file's name
        run = await trio.to_thread.run_sync(
            lambda: indexer(
                "run", str(project), "--no-progress", env={"INDEXER_DATABASE_URL": database_url}
            )
        )
    assert run.returncode == 0, run.stderr
    assert "done: 2 events" in run.stdout  # the log from BOB's address is not TOKEN's
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL('SELECT id, from_, "to", value FROM {} ORDER BY id').format(
                sql.Identifier(project.name, "erc20_transfer")
            )
        ).fetchall()
    assert [(i, f, t, int(v)) for i, f, t, v in rows] == [
        ("3-0", ALICE, BOB, 5),
        ("9-0", BOB, ALICE, 2),
    ]
    await trio.to_thread.run_sync(_check_generated, project)


# -- a real-world ABI: overloads, tuples, arrays, indexed dynamic types -------------------


def _import_handlers(project: Path) -> ModuleType:
    """The generated handlers module, imported as the tests of the project do."""
    sys.path.insert(0, str(project))
    try:
        spec = importlib.util.spec_from_file_location(
            f"handlers_{project.name}", project / "handlers.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("indexer_types", None)


def test_init_with_overloads_tuples_arrays_and_indexed_strings(projects: Path) -> None:
    project = projects / _name("mix")
    out = indexer("init", str(project), "--abi", str(MIX_ABI), "--file", str(LOGS))
    assert out.returncode == 0, out.stderr
    assert "7 events of EventsMix" in out.stdout  # the contract is named after the file
    types = (project / "indexer_types.py").read_text()
    assert types.startswith("# Generated by `indexer codegen`")
    for name in (
        "EventsMixTextChangedParams",
        "EventsMixTextChanged2Params",
        "EventsMixOrderFulfilledEvent",
    ):
        assert name in types
    assert '"ids": list[int],' in types
    assert '"indexedKey": bytes,' in types  # an indexed string is its hash
    assert '"offer": list[tuple[int, str, int, int]],' in types
    _check_generated(project)

    handlers = _import_handlers(project)
    h = HandlerHarness(project, handlers=handlers)
    node = b"\x42" * 32
    spent = [(2, TOKEN, 7, 1)]
    received = [(1, BOB, 0, 10**18, ALICE)]
    events: list[Event | RawLog] = [
        h.event(
            "EventsMix",
            "TextChanged",
            {"node": node, "indexedKey": "url", "key": "url"},
            address=TOKEN,
            block_number=1,
        ),
        h.log(
            "EventsMix",
            "OrderFulfilled",
            {
                "orderHash": node,
                "offerer": ALICE,
                "zone": BOB,
                "recipient": ALICE,
                "offer": spent,
                "consideration": received,
            },
            address=TOKEN,
            block_number=2,
        ),
        h.event(
            "EventsMix",
            "TransferBatch",
            {"operator": ALICE, "from": ALICE, "to": BOB, "ids": [1, 2], "values": [10, 20]},
            address=TOKEN,
            block_number=3,
        ),
        h.event(
            "EventsMix", "URI", {"value": "ipfs://x\x00y", "id": 5}, address=TOKEN, block_number=4
        ),
    ]
    # The second TextChanged: h.event/h.log take the first signature of a name.
    second = make_log(
        "event TextChanged(bytes32 indexed node, string indexed indexedKey, string key, string value)",
        {"node": node, "indexedKey": "url", "key": "url", "value": "https://ens.domains"},
        address=TOKEN,
        block_number=5,
    )
    events.append(second)
    trio.run(h.send, *events)
    first = h.get(handlers.EventsMixTextChanged, "1-0")
    assert first is not None
    assert first.indexedKey == keccak(b"url")  # the topic: keccak256 of the string
    assert first.key == "url"
    latest = h.get(handlers.EventsMixTextChanged2, "5-0")
    assert latest is not None
    assert (latest.key, latest.value) == ("url", "https://ens.domains")
    order = h.get(handlers.EventsMixOrderFulfilled, "2-0")
    assert order is not None
    assert json.loads(order.offer) == [[2, TOKEN, 7, 1]]
    assert json.loads(order.consideration) == [[1, BOB, 0, 10**18, ALICE]]
    assert order.orderHash == node
    batch = h.get(handlers.EventsMixTransferBatch, "3-0")
    assert batch is not None
    assert (json.loads(batch.ids), json.loads(batch.values)) == ([1, 2], [10, 20])
    assert (batch.from_, batch.to) == (ALICE, BOB)
    uri = h.get(handlers.EventsMixURI, "4-0")
    assert uri is not None
    assert (uri.value, uri.id_) == ("ipfs://x\ufffdy", 5)  # NUL cannot be stored in text


# -- mypy catches misspelt and mistyped parameters --------------------------------------


def test_mypy_catches_a_misspelt_or_mistyped_parameter(projects: Path, tmp_path: Path) -> None:
    signatures = tmp_path / "token.txt"
    signatures.write_text(ERC20_SIGNATURES)
    project = projects / _name("mypy")
    out = indexer("init", str(project), "--abi", str(signatures), "--file", str(LOGS))
    assert out.returncode == 0, out.stderr
    handlers = project / "handlers.py"
    good = handlers.read_text()
    assert 'value=p["value"],' in good
    handlers.write_text(good.replace('value=p["value"],', 'value=p["valeu"],', 1))
    typed = mypy("handlers.py", cwd=project)
    assert typed.returncode == 1, typed.stdout
    assert 'TypedDict "TokenTransferParams" has no key "valeu"' in typed.stdout
    assert "handlers.py:" in typed.stdout
    handlers.write_text(good.replace('to=p["to"],', 'to=p["value"],', 1))
    typed = mypy("handlers.py", cwd=project)
    assert typed.returncode == 1, typed.stdout
    assert (
        'Argument "to" to "TokenTransfer" has incompatible type "int"; expected "str"'
        in typed.stdout
    )
    # The event's transaction and block are typed: their fields check, a misspelt one fails.
    fields = "event.transaction.from_ + str(event.block.timestamp + event.block.number)"
    assert "transaction_hash=event.transaction_hash," in good
    handlers.write_text(good.replace("=event.transaction_hash,", f"={fields},", 1))
    typed = mypy("handlers.py", cwd=project)
    assert typed.returncode == 0, typed.stdout
    handlers.write_text(good.replace("=event.transaction_hash,", "=event.transaction.frm,", 1))
    typed = mypy("handlers.py", cwd=project)
    assert typed.returncode == 1, typed.stdout
    assert '"Transaction" has no attribute "frm"' in typed.stdout
    handlers.write_text(good.replace("=event.transaction_hash,", "=event.block.hash_,", 1))
    typed = mypy("handlers.py", cwd=project)
    assert typed.returncode == 1, typed.stdout
    assert '"Block" has no attribute "hash_"' in typed.stdout
    # A field's type is the field's: `to` may be None (a contract creation).
    handlers.write_text(good.replace("=event.transaction_hash,", "=event.transaction.to,", 1))
    typed = mypy("handlers.py", cwd=project)
    assert typed.returncode == 1, typed.stdout
    assert 'incompatible type "str | None"; expected "str"' in typed.stdout


# -- codegen ------------------------------------------------------------------------------


def test_codegen_is_deterministic_and_follows_the_config(
    projects: Path, tmp_path: Path, database_url: str
) -> None:
    signatures = tmp_path / "token.txt"
    signatures.write_text(ERC20_SIGNATURES)
    project = projects / _name("codegen")
    assert (
        indexer("init", str(project), "--abi", str(signatures), "--file", str(LOGS)).returncode == 0
    )
    generated = (project / "indexer_types.py").read_bytes()
    same = indexer("codegen", str(project))
    assert same.returncode == 0, same.stderr
    assert "up to date" in same.stdout
    assert (project / "indexer_types.py").read_bytes() == generated
    # A new event in the config: `run` rewrites the module before importing the handlers.
    config = project / "indexer.yaml"
    config.write_text(
        config.read_text() + '          - "event Deposit(address indexed dst, uint256 wad)"\n'
    )
    run = indexer("run", str(project), "--no-progress", env={"INDEXER_DATABASE_URL": database_url})
    assert run.returncode == 0, run.stderr
    assert "TokenDepositParams" in (project / "indexer_types.py").read_text()
    assert "codegen: the config changed" in run.stderr
    (project / "indexer_types.py").write_text("stale")
    again = indexer("codegen", str(project))
    assert again.returncode == 0
    assert "wrote" in again.stdout
    assert b"TokenDepositParams" in (project / "indexer_types.py").read_bytes()


# -- refusals -------------------------------------------------------------------------------


def _fails(*args: str) -> str:
    out = indexer(*args)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr


def test_init_refusals_are_clear(tmp_path: Path) -> None:
    abi = tmp_path / "token.txt"
    abi.write_text(ERC20_SIGNATURES)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert "busy is not empty" in _fails("init", str(busy), "--abi", str(abi), "--file", str(LOGS))
    assert (busy / "notes.txt").read_text() == "mine"
    assert len(list(busy.iterdir())) == 1

    no_events = tmp_path / "functions.json"
    no_events.write_text(
        json.dumps([{"type": "function", "name": "f", "inputs": [], "outputs": []}])
    )
    new = tmp_path / "new"
    err = _fails("init", str(new), "--abi", str(no_events), "--file", str(LOGS))
    assert "has no events" in err
    assert not new.exists()  # nothing written

    err = _fails("init", str(new), "--abi", str(abi), "--file", str(LOGS), "--address", "0x1234")
    assert "--address '0x1234' is not an address" in err

    # A port nothing listens on (bound, then closed).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = _fails(
        "init", str(new), "--abi", str(abi), "--rpc", f"http://user:secret@127.0.0.1:{port}/"
    )
    assert "cannot reach the RPC URL" in err
    assert "eth_chainId" in err
    assert "secret" not in err

    same_names = tmp_path / "same.txt"
    same_names.write_text("event Set(uint256 x)\nevent Set(int256 x)\n")
    err = _fails("init", str(new), "--abi", str(same_names), "--file", str(LOGS))
    assert "Set(uint256) and Set(int256) have the same parameter names" in err

    # stdin is not a terminal: never asks, names the missing flag.
    assert "--abi is required" in _fails("init", str(new), "--file", str(LOGS))
    assert "--rpc URL or --file PATH is required" in _fails("init", str(new), "--abi", str(abi))
    assert not new.exists()


# -- on a terminal: prompts --------------------------------------------------------------


def test_on_a_terminal_init_asks_for_what_the_flags_leave_out(tmp_path: Path) -> None:
    import pty
    import select
    import time

    abi = tmp_path / "erc20.txt"
    abi.write_text(ERC20_SIGNATURES)
    project = tmp_path / "asked"
    answers = [
        (b"ABI file", f"{abi}\n".encode()),
        (b"Contract name", b"\n"),  # the default, from the file name
        (b"addresses", f"{TOKEN.upper().replace('0X', '0x')}\n".encode()),
        (b"'file'", b"file\n"),
        (b"Log file", f"{LOGS}\n".encode()),
        (b"Chain id", b"\n"),
        (b"Start block", f"{FIRST_BLOCK}\n".encode()),
    ]
    # A pseudo-terminal as stdin/stdout (no fork of this multi-threaded process).
    fd, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "indexer", "init", str(project)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            seen += chunk
            while answers and answers[0][0] in seen:
                question, answer = answers.pop(0)
                seen = seen.replace(question, b"", 1)
                os.write(fd, answer)
        status = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(fd)
    assert answers == [], seen.decode(errors="replace")
    assert status == 0, seen.decode(errors="replace")
    config = (project / "indexer.yaml").read_text()
    assert "- name: Erc20\n" in config
    assert f'- "{TOKEN}"' in config
    assert f"start_block: {FIRST_BLOCK}\n" in config
    assert "  - id: 1\n" in config
