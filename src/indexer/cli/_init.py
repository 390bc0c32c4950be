"""``indexer init DIR --abi FILE ...``: a new project that runs at once, and ``indexer codegen``.

The project stores every event of one contract: one entity per event
(``<Contract><Event>``, table ``<contract>_<event>``) with the event's
parameters plus ``block_number``, ``log_index`` and ``transaction_hash``, id
``"<block>-<log_index>"``, and one handler per event name that stores it.
Everything is computed before the first file is written, so a refused init
leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import IndexerError
from .._redact import redact_url
from ..abi import EventSpec, events_from_abi, parse_event_signature
from ..config import load_config
from ._codegen import GENERATED_FILE, event_models, write_types
from ._scaffold import Answers, render

if TYPE_CHECKING:
    import argparse

__all__ = ["add_codegen_parser", "add_init_parser", "run_codegen", "run_init"]

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")


class InitError(IndexerError):
    """``indexer init`` cannot create the project (the message says why)."""


def add_init_parser(sub: Any) -> None:
    p = sub.add_parser(
        "init",
        help="create a project that indexes every event of a contract",
        description="Create a project in DIR (new or empty) storing every event of one contract. "
        "On a terminal, asks for what the flags leave out; otherwise never asks.",
    )
    p.add_argument("dir", type=Path, help="the project directory to create (must be new or empty)")
    p.add_argument(
        "--abi",
        type=Path,
        help="ABI JSON file, or a file of Solidity event signatures (one per line)",
    )
    p.add_argument("--contract", help="contract name in indexer.yaml (default: from the ABI file)")
    p.add_argument(
        "--address",
        action="append",
        default=[],
        metavar="0x...",
        help="a contract address (repeat for several; none: any address)",
    )
    p.add_argument("--chain-id", type=int, help="chain id (default: the RPC's eth_chainId, or 1)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--rpc", metavar="URL", help="a JSON-RPC node URL")
    source.add_argument(
        "--file", type=Path, metavar="PATH", help="a log file (.jsonl, .jsonl.gz, cryo .parquet)"
    )
    p.add_argument(
        "--start-block", type=int, help="first block (default: the RPC's head, or 0 for a file)"
    )
    p.add_argument("--end-block", type=int, help="last block (default: follow the head / file end)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def add_codegen_parser(sub: Any) -> None:
    p = sub.add_parser(
        "codegen",
        help=f"write the project's typed event parameters ({GENERATED_FILE})",
    )
    p.add_argument("project", type=Path, help="project directory (holds indexer.yaml)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def run_codegen(args: argparse.Namespace) -> int:
    config = load_config(args.project)
    written = write_types(config)
    path = config.project_dir / GENERATED_FILE
    print(f"{'wrote' if written else 'up to date:'} {path}")
    return 0


# -- reading the inputs ------------------------------------------------------


def read_abi(path: Path) -> tuple[list[EventSpec], Any]:
    """The usable events of an ABI file and its JSON (None for a signatures file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InitError(f"cannot read the ABI file {path}: {exc.strerror or exc}.") from None
    stripped = text.lstrip()
    data: Any = None
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InitError(f"{path} is not valid JSON: {exc}.") from None
        if isinstance(data, dict) and isinstance(data.get("abi"), list):
            data = data["abi"]  # a Hardhat/Foundry artifact
        try:
            specs = events_from_abi(data)
        except ValueError as exc:
            raise InitError(f"{path} is not a valid ABI: {exc}.") from None
    else:
        specs = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("//", 1)[0].split("#", 1)[0].strip()
            if not line:
                continue
            try:
                specs.append(parse_event_signature(line))
            except ValueError as exc:
                raise InitError(
                    f"{path}:{number}: not an event signature: {exc}. Write one per line, "
                    'e.g. "event Transfer(address indexed from, address indexed to, uint256 value)".'
                ) from None
    usable = [s for s in specs if not s.anonymous]
    if not usable:
        what = "only anonymous events (no topic0: they cannot be indexed)" if specs else "no events"
        raise InitError(f"the ABI {path} has {what}; init needs at least one event to index.")
    topics: dict[str, EventSpec] = {}
    for spec in usable:
        if spec.topic0 in topics:
            raise InitError(f"{path}: the event {spec.signature} is listed twice.")
        topics[spec.topic0] = spec
    _check_overloads(usable, path)
    return usable, data


def _check_overloads(specs: list[EventSpec], path: Path) -> None:
    names: dict[str, list[EventSpec]] = {}
    for s in specs:
        names.setdefault(s.name, []).append(s)
    for group in names.values():
        keys = [frozenset(p.name for p in s.inputs) for s in group]
        if len(set(keys)) != len(keys):
            raise InitError(
                f"{path}: the overloads {' and '.join(s.signature for s in group)} have the same "
                "parameter names. Their logs reach one handler by event name, which tells them "
                "apart by parameter names: keep only one of them (a file of signatures selects)."
            )


def contract_name_from(path: Path) -> str:
    stem = path.name.split(".")[0]
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", stem) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Contract"
    return name if _IDENT_RE.fullmatch(name) else f"C{name}"


def check_address(text: str) -> str:
    address = text.strip()
    if not _ADDRESS_RE.fullmatch(address):
        raise InitError(
            f"--address {text!r} is not an address: write 0x followed by 40 hex digits."
        )
    return address.lower()


def _rpc_call(url: str, method: str) -> Any:
    import httpx

    try:
        response = httpx.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, timeout=10.0
        )
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise InitError(
            f"cannot reach the RPC URL {redact_url(url)} ({method}): {type(exc).__name__}: {exc}"
            ". Check the URL and that the node is up."
        ) from None
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, str) or not result.startswith("0x"):
        error = body.get("error") if isinstance(body, dict) else body
        raise InitError(
            f"the RPC URL {redact_url(url)} did not answer {method} with a number: {error!r}."
        )
    return int(result, 16)


def rpc_chain(url: str) -> tuple[int, int]:
    """``(eth_chainId, eth_blockNumber)`` of the node at ``url``."""
    if not url.startswith(("http://", "https://")):
        raise InitError(f"--rpc {redact_url(url)!r} is not an http:// or https:// URL.")
    return _rpc_call(url, "eth_chainId"), _rpc_call(url, "eth_blockNumber")


# -- the answers ----------------------------------------------------------------


class _Asker:
    """Rich prompts on a terminal; on anything else, a missing answer is an error."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def text(self, flag: str, question: str, default: str | None = None) -> str:
        if not self.interactive:
            if default is not None:
                return default
            raise InitError(
                f"{flag} is required: stdin is not a terminal, so init does not ask for it."
            )
        from rich.prompt import Prompt

        while True:
            answer = (
                Prompt.ask(question, default=default)
                if default is not None
                else Prompt.ask(question)
            )
            if answer and answer.strip():
                return answer.strip()

    def integer(self, flag: str, question: str, default: int | None) -> int:
        while True:
            text = self.text(flag, question, None if default is None else str(default))
            try:
                return int(text)
            except ValueError:
                if not self.interactive:
                    raise InitError(f"{flag}: {text!r} is not a number.") from None


def gather(args: argparse.Namespace, interactive: bool) -> Answers:
    ask = _Asker(interactive)
    directory: Path = args.dir
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InitError(
            f"{directory} is not empty: init only creates a project in a new or empty directory."
        )
    abi_path = args.abi or Path(
        ask.text("--abi", "ABI file (ABI JSON, or Solidity event signatures one per line)")
    )
    specs, abi_json = read_abi(abi_path)
    contract = args.contract or ask.text(
        "--contract", "Contract name", contract_name_from(abi_path)
    )
    if not _IDENT_RE.fullmatch(contract):
        raise InitError(
            f"--contract {contract!r}: a contract name is letters, digits and _, not starting with a digit."
        )
    raw_addresses: list[str] = list(args.address)
    if not raw_addresses and interactive:
        answer = ask.text("--address", "Contract addresses (comma-separated; '-' for any)", "-")
        raw_addresses = [] if answer == "-" else [a for a in answer.split(",") if a.strip()]
    addresses = sorted({check_address(a) for a in raw_addresses})
    rpc: str | None = args.rpc
    file: Path | None = args.file
    if rpc is None and file is None:
        if not interactive:
            raise InitError(
                "--rpc URL or --file PATH is required: stdin is not a terminal, so init does not ask."
            )
        kind = ask.text("--rpc/--file", "Read logs from 'rpc' (a node) or 'file'", "rpc")
        if kind.lower().startswith("f"):
            file = Path(ask.text("--file", "Log file (.jsonl, .jsonl.gz, .parquet)"))
        else:
            rpc = ask.text("--rpc", "JSON-RPC URL")
    head: int | None = None
    chain_id: int | None = args.chain_id
    if rpc is not None:
        node_chain, head = rpc_chain(rpc)
        if chain_id is not None and chain_id != node_chain:
            raise InitError(
                f"--chain-id {chain_id} does not match the node at {redact_url(rpc)}, "
                f"whose eth_chainId is {node_chain}."
            )
        chain_id = node_chain
    else:
        assert file is not None
        if not file.is_file():
            raise InitError(f"--file {file}: no such file.")
        if chain_id is None:
            chain_id = ask.integer("--chain-id", "Chain id", 1) if interactive else 1
    start = args.start_block
    if start is None:
        default = head if head is not None else 0
        start = ask.integer("--start-block", "Start block", default) if interactive else default
    if start < 0:
        raise InitError(f"--start-block {start} must be >= 0.")
    if args.end_block is not None and args.end_block < start:
        raise InitError(f"--end-block {args.end_block} is before --start-block {start}.")
    return Answers(
        directory=directory,
        abi_path=abi_path,
        specs=specs,
        abi_json=abi_json,
        contract=contract,
        addresses=addresses,
        chain_id=chain_id,
        rpc=rpc,
        file=file,
        start_block=start,
        end_block=args.end_block,
    )


def run_init(args: argparse.Namespace) -> int:
    answers = gather(args, interactive=sys.stdin.isatty())
    files = render(answers)
    directory = answers.directory
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    load_config(directory)  # what `indexer run` will read: a bug here fails now, not later
    events = len(event_models([(answers.contract, answers.specs)]))
    print(f"created {directory}: {events} event{'s' if events != 1 else ''} of {answers.contract}")
    print(f"  run it:    indexer run {directory}")
    print(f"  test it:   pytest {directory / 'tests'}")
    print(f"  iterate:   indexer dev {directory}")
    return 0
