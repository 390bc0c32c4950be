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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import IndexerError
from .._redact import redact_url
from ..abi import EventSpec, events_from_abi, parse_event_signature
from ..config import load_config
from ._codegen import (
    GENERATED_FILE,
    EventModel,
    event_models,
    field_name,
    generate_types,
    snake_case,
    write_types,
)

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


@dataclass
class Answers:
    directory: Path
    abi_path: Path
    specs: list[EventSpec]
    abi_json: Any
    contract: str
    addresses: list[str]
    chain_id: int
    rpc: str | None
    file: Path | None
    start_block: int
    end_block: int | None
    notes: list[str] = field(default_factory=list)


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


# -- the files ------------------------------------------------------------------


def project_name(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", directory.resolve().name.lower()).strip("-")
    return name or "indexer-project"


def _yaml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML string


def render(a: Answers) -> dict[str, str]:
    """Every file of the project, by path relative to it."""
    files: dict[str, str] = {}
    lines = [
        f"# Created by `indexer init`: every event of {a.contract}.",
        f"name: {project_name(a.directory)}",
        "handlers: handlers.py",
        "chains:",
        f"  - id: {a.chain_id}",
        f"    start_block: {a.start_block}",
    ]
    if a.end_block is not None:
        lines.append(f"    end_block: {a.end_block}")
    if a.rpc is not None:
        lines.append(f"    source: {{rpc: {_yaml_str(a.rpc)}}}")
    else:
        assert a.file is not None
        target = a.directory.resolve()
        source = a.file.resolve()
        # Relative inside the project (it moves with it), absolute otherwise.
        shown = str(source.relative_to(target)) if source.is_relative_to(target) else str(source)
        lines += ["    source:", f"      file: {_yaml_str(shown)}"]
    lines += ["    contracts:", f"      - name: {a.contract}"]
    if a.addresses:
        lines.append("        addresses:")
        lines += [f'          - "{x}"' for x in a.addresses]
    if a.abi_json is not None:
        abi_file = f"abis/{a.contract}.json"
        files[abi_file] = json.dumps(a.abi_json, indent=2) + "\n"
        lines.append(f"        abi: {abi_file}")
    else:
        lines.append("        events:")
        lines += [f"          - {_yaml_str(str(s))}" for s in a.specs]
    files["indexer.yaml"] = "\n".join(lines) + "\n"
    contracts: list[tuple[str, list[EventSpec]]] = [(a.contract, a.specs)]
    models = event_models(contracts)
    files[GENERATED_FILE] = generate_types(contracts)
    files["handlers.py"] = render_handlers(a.contract, models)
    files["tests/__init__.py"] = ""
    files["tests/conftest.py"] = _CONFTEST
    files["tests/test_handlers.py"] = render_test(a, models)
    files["README.md"] = render_readme(a, models)
    files[".gitignore"] = ".indexer/\n__pycache__/\n.mypy_cache/\n"
    return files


@dataclass(frozen=True)
class _Field:
    name: str  # entity field
    param: str  # ABI name, the key of event.params
    entity_type: str
    value: str  # expression of the value, from `p`


def entity_fields(m: EventModel) -> list[_Field]:
    taken = {"id", "block_number", "log_index", "transaction_hash"}
    out = []
    for p, t in zip(m.spec.inputs, m.spec.types, strict=True):
        name = field_name(p.name, taken)
        key = f"p[{p.name!r}]".replace("'", '"')
        if p.indexed and not t.is_value:
            etype, value = "bytes", key
        elif t.kind in ("array", "tuple"):
            etype, value = "str", f"_json({key})"
        elif t.kind == "string":
            etype, value = "str", f"_text({key})"
        elif t.kind in ("uint", "int"):
            etype, value = "int", key
        elif t.kind == "bool":
            etype, value = "bool", key
        elif t.kind in ("bytes", "bytesN"):
            etype, value = "bytes", key
        else:
            etype, value = "str", key
        out.append(_Field(name, p.name, etype, value))
    return out


def _table(m: EventModel) -> str:
    suffix = "" if m.overload == 1 else f"_{m.overload}"
    return f"{snake_case(m.contract)}_{snake_case(m.spec.name)}{suffix}"


def render_handlers(contract: str, models: list[EventModel]) -> str:
    uses_json = any(f.value.startswith("_json") for m in models for f in entity_fields(m))
    uses_text = any(f.value.startswith("_text") for m in models for f in entity_fields(m))
    overloaded = any(m.overload > 1 for m in models)
    events = sorted({m.event_class for m in models})
    params = sorted({m.params_class for m in models if _is_overloaded(m, models)})
    out = [
        f'"""Every event of {contract}, one row per log (created by `indexer init`; yours to edit).',
        "",
        "Each handler declares its event with a class from indexer_types.py (generated by",
        "`indexer codegen` from indexer.yaml), so `mypy --strict` checks every `event.params[...]`.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
    ]
    if uses_json:
        out.append("import json")
    if overloaded:
        out.append("from typing import cast")
    if uses_json or overloaded:
        out.append("")
    out.append("from indexer import Context, Entity, on")
    out.append("")
    imports = sorted(events + params)
    if len(f"from indexer_types import {', '.join(imports)}") <= 88:
        out.append(f"from indexer_types import {', '.join(imports)}")
    else:
        out.append("from indexer_types import (")
        out += [f"    {n}," for n in imports]
        out.append(")")
    if uses_json:
        out += [
            "",
            "",
            "def _json(value: object) -> str:",
            '    """Arrays and tuples are stored as JSON text; bytes as 0x hex."""',
            '    return json.dumps(value, separators=(",", ":"), default=_hex)',
            "",
            "",
            "def _hex(value: object) -> str:",
            "    if isinstance(value, bytes):",
            '        return "0x" + value.hex()',
            '    raise TypeError(f"cannot store {type(value).__name__} as JSON")',
        ]
    if uses_text:
        out += [
            "",
            "",
            "def _text(value: str) -> str:",
            '    """PostgreSQL text cannot hold NUL: it is stored as U+FFFD."""',
            '    return value.replace("\\x00", "\\ufffd")',
        ]
    for m in models:
        fields = entity_fields(m)
        out += ["", ""]
        out.append(f"class {m.base}(Entity):")
        out.append(f'    """{m.spec}"""')
        out.append("")
        out.append(f'    __table__ = "{_table(m)}"')
        out.append('    id: str  # "<block_number>-<log_index>"')
        for f in fields:
            comment = ""
            if f.value.startswith("_json"):
                comment = "  # JSON text"
            elif (
                f.entity_type == "bytes"
                and f.value == f'p["{f.param}"]'
                and _indexed_hash(m, f.param)
            ):
                comment = "  # indexed: the keccak256 of the value"
            out.append(f"    {f.name}: {f.entity_type}{comment}")
        out += ["    block_number: int", "    log_index: int", "    transaction_hash: str"]
    by_event: dict[str, list[EventModel]] = {}
    for m in models:
        by_event.setdefault(m.event_class, []).append(m)
    for event_class, group in by_event.items():
        first = group[0]
        fn = f"{snake_case(first.contract)}_{snake_case(first.spec.name)}"
        out += ["", ""]
        out.append(f'@on("{first.contract}", "{first.spec.name}")')
        line = f"async def {fn}(event: {event_class}, ctx: Context) -> None:"
        if len(line) <= 88:
            out.append(line)
        else:  # as ruff format splits it
            out += [f"async def {fn}(", f"    event: {event_class}, ctx: Context", ") -> None:"]
        if len(group) == 1:
            out += _store(first, "event.params", "    ")
        else:
            for i, m in enumerate(group):
                keys = ", ".join(f'"{p.name}"' for p in m.spec.inputs)
                cond = f"event.params.keys() == {{{keys}}}" if keys else "not event.params"
                head = f"    {'if' if i == 0 else 'elif'} "
                if len(f"{head}{cond}:") <= 88:
                    out.append(f"{head}{cond}:")
                else:
                    out += [f"{head}event.params.keys() == {{", f"        {keys}", "    }:"]
                out += _store(m, f'cast("{m.params_class}", event.params)', "        ")
    return "\n".join(out) + "\n"


def _is_overloaded(m: EventModel, models: list[EventModel]) -> bool:
    return sum(1 for o in models if o.event_class == m.event_class) > 1


def _indexed_hash(m: EventModel, param: str) -> bool:
    return any(
        p.name == param and p.indexed and not t.is_value
        for p, t in zip(m.spec.inputs, m.spec.types, strict=True)
    )


def _store(m: EventModel, params: str, indent: str) -> list[str]:
    fields = entity_fields(m)
    out = []
    if fields:
        line = f"{indent}p = {params}"
        if len(line) <= 88:
            out.append(line)
        else:
            out += [f"{indent}p = cast(", f"{indent}    {params[5:-1]}", f"{indent})"]
    out.append(f"{indent}ctx.set(")
    out.append(f"{indent}    {m.base}(")
    out.append(f'{indent}        id=f"{{event.block_number}}-{{event.log_index}}",')
    out += [f"{indent}        {f.name}={f.value}," for f in fields]
    out += [
        f"{indent}        block_number=event.block_number,",
        f"{indent}        log_index=event.log_index,",
        f"{indent}        transaction_hash=event.transaction_hash,",
        f"{indent}    )",
        f"{indent})",
    ]
    return out


_CONFTEST = '''"""Puts the project directory on sys.path: the tests import `handlers` as the framework does."""

import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))
'''


def _sample(t: Any, indexed: bool) -> str:
    """A Python literal of a value of ABI type ``t`` for the generated test."""
    if indexed and t.kind in ("array", "tuple"):
        return 'b"\\x11" * 32'  # make_event takes the topic (the hash) of these
    if t.kind == "uint":
        return "12345"
    if t.kind == "int":
        return "-12345"
    if t.kind == "address":
        return '"0x' + "11" * 20 + '"'
    if t.kind == "bool":
        return "True"
    if t.kind == "string":
        return '"hello"'
    if t.kind == "bytes":
        return 'b"\\x01\\x02"'
    if t.kind == "bytesN":
        return f'b"\\x01" * {t.size}'
    if t.kind == "array":
        n = t.length or 2
        return "[" + ", ".join(_sample(t.elem, False) for _ in range(n)) + "]"
    assert t.kind == "tuple"
    inner = ", ".join(_sample(c, False) for c in t.comps)
    return f"({inner},)" if len(t.comps) == 1 else f"({inner})"


def render_test(a: Answers, models: list[EventModel]) -> str:
    m = models[0]
    fields = entity_fields(m)
    address = f'"{a.addresses[0]}"' if a.addresses else '"0x' + "ab" * 20 + '"'
    out = [
        f'"""A handler test (created by `indexer init`): a {m.spec.name} event, sent through the',
        "handlers in memory (no node, no database), is stored as one row.",
        "",
        f"Run it with `pytest {a.directory.name}/tests` (or `pytest tests` in the project).",
        '"""',
        "",
        "from pathlib import Path",
        "",
        "import handlers  # conftest.py puts the project directory on sys.path",
        "import trio",
        f"from handlers import {m.base}",
        "",
        "from indexer.testing import HandlerHarness",
        "",
        "PROJECT = Path(__file__).resolve().parent.parent  # holds indexer.yaml",
        "",
        "",
        f"def test_{snake_case(m.spec.name)}_is_stored() -> None:",
        "    h = HandlerHarness(PROJECT, handlers=handlers)",
        "    event = h.event(",
        f'        "{m.contract}",',
        f'        "{m.spec.name}",',
    ]
    if m.spec.inputs:
        out.append("        {")
        for p, t in zip(m.spec.inputs, m.spec.types, strict=True):
            out.append(f'            "{p.name}": {_sample(t, p.indexed)},')
        out.append("        },")
    else:
        out.append("        {},")
    out += [
        f"        address={address},",
        "        block_number=7,",
        "        log_index=3,",
        "    )",
        "    trio.run(h.send, event)",
        f'    row = h.get({m.base}, "7-3")',
        "    assert row is not None",
        "    assert (row.block_number, row.log_index) == (7, 3)",
        "    assert row.transaction_hash == event.transaction_hash",
    ]
    for f in fields:
        if f.value.startswith(("_json", "_text")):
            continue
        out.append(f'    assert row.{f.name} == event.params["{f.param}"]')
    return "\n".join(out) + "\n"


def render_readme(a: Answers, models: list[EventModel]) -> str:
    source = f"the node at {redact_url(a.rpc)}" if a.rpc else f"the file {a.file}"
    rows = "\n".join(f"| `{m.spec.signature}` | `{m.base}` | `{_table(m)}` |" for m in models)
    return f"""# {project_name(a.directory)}

Created by `indexer init`: every event of `{a.contract}` on chain {a.chain_id}, read from
{source}, from block {a.start_block}{f" to {a.end_block}" if a.end_block is not None else ""}, one row per log.

```sh
indexer run .          # index (an embedded PostgreSQL starts under .indexer/)
indexer dev .          # index, and re-index whenever handlers.py or indexer.yaml changes
indexer serve .        # GraphQL and SQL over the tables
pytest tests           # the handler test
mypy --strict handlers.py
```

| Event | Entity | Table |
| --- | --- | --- |
{rows}

Every table has the event's parameters plus `block_number`, `log_index` and
`transaction_hash`; the id is `"<block_number>-<log_index>"`. Arrays and tuples are
stored as JSON text (bytes as `0x` hex). An indexed `string`, `bytes`, array or tuple
is stored as the 32-byte keccak256 hash carried by the log's topic: the value itself is
not in the log.

`indexer_types.py` is generated from `indexer.yaml` (`indexer codegen .`; `run` and
`dev` regenerate it when the config changes): handlers declare their event with its
classes, so `mypy --strict` catches a misspelt or mistyped `event.params[...]`.
"""
