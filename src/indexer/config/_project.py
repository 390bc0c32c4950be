"""Load and validate a project's ``indexer.yaml``.

A project is a directory holding ``indexer.yaml`` and a handlers module.
`load_config` turns that file into frozen dataclasses, with every path made
absolute and every value checked; any problem raises `ConfigError` naming the
file and the key path.  The file format::

    name: erc20-balances            # required, [a-z0-9_-]+
    handlers: handlers.py           # required, relative to the project directory
    database: postgresql://...      # optional; absent = embedded PostgreSQL
    schema: erc20                   # optional; default: name with '-' -> '_'
    raw_events: false               # optional, default false
    chains:                         # required, non-empty, unique ids
      - id: 1
        start_block: 18426253
        end_block: 18426303         # optional
        max_reorg_depth: 200        # optional, default 200
        source: {file: data/logs.jsonl.gz}   # or {rpc: https://..., poll_interval: 1.0}
        field_selection:            # optional: transaction and block fields on events
          transaction: [from, gas_used]
          block: [base_fee_per_gas]
        contracts:
          - name: ERC20
            addresses: ["0x..."]    # optional; absent = any address
            events: ["event Transfer(address indexed from, address indexed to, uint256 value)"]
            abi: abis/erc20.json    # optional; with it `events` may hold bare names
            field_selection: {transaction: [value]}  # optional; adds to the chain's
          - name: Token               # a factory's children: no `addresses`
            factory: {contract: Registry, event: TokenListed, parameter: token}
            events: ["event Transfer(address indexed from, address indexed to, uint256 value)"]

A file source may name cryo ``blocks`` and ``transactions`` parquet files
beside its log file (``source: {file: ..., blocks: ..., transactions: ...}``);
a selection such a source cannot provide is an error here.

An optional key given as null (``end_block:`` with no value) counts as absent.
The environment variable ``INDEXER_DATABASE_URL`` overrides ``database``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .._errors import ConfigError
from .._fields import FieldSelection
from .._redact import redact_url
from ._factories import check_factories
from ._selection import check_file_selection, read_selection
from ._validate import (
    Where,
    as_bool,
    as_float,
    as_int,
    as_list,
    as_str,
    check_routing,
    load_yaml,
    read_mapping,
    resolve_events,
    resolve_path,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..abi import EventSpec

__all__ = [
    "ChainConfig",
    "ContractConfig",
    "FactoryConfig",
    "ProjectConfig",
    "SourceConfig",
    "load_config",
]

CONFIG_FILE = "indexer.yaml"
DATABASE_ENV = "INDEXER_DATABASE_URL"

_NAME_RE = re.compile(r"[a-z0-9_-]+")
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]*")
_CONTRACT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_SOURCE_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
_TOP_KEYS = ("name", "handlers", "database", "schema", "raw_events", "chains")
_CHAIN_KEYS = (
    "id",
    "start_block",
    "end_block",
    "max_reorg_depth",
    "source",
    "contracts",
    "field_selection",
)
_SOURCE_KEYS = ("file", "rpc", "poll_interval", "blocks", "transactions", "child_address_limit")
_CONTRACT_KEYS = ("name", "addresses", "factory", "events", "abi", "field_selection")
_FACTORY_KEYS = ("contract", "event", "parameter")


@dataclass(frozen=True)
class FactoryConfig:
    """Where a child contract's addresses come from: ``parameter`` of ``contract``'s ``events``."""

    contract: str
    events: tuple[str, ...]
    parameter: str


@dataclass(frozen=True)
class ContractConfig:
    """A contract to index: its name, addresses (None = any address) and events.

    With ``factory``, ``addresses`` is None and the addresses are the
    children registered while indexing (see docs/reference.md, "Factories").
    """

    name: str
    addresses: frozenset[str] | None
    events: tuple[EventSpec, ...]
    field_selection: FieldSelection = FieldSelection()  # noqa: RUF009 - frozen, so shared safely
    """What its events carry: the chain's selection and the contract's own."""
    factory: FactoryConfig | None = None


@dataclass(frozen=True)
class SourceConfig:
    """Where a chain's logs come from: exactly one of a local `file` or `rpc` URLs."""

    file: Path | None = None
    rpc: str | None = None
    poll_interval: float = 1.0
    rpc_urls: tuple[str, ...] = ()
    """Every node URL, in order of preference; ``rpc`` is the first (kept for one-URL code)."""
    blocks: Path | None = None
    """A file source's cryo ``blocks`` parquet file, for block fields and block handlers."""
    transactions: Path | None = None
    """A file source's cryo ``transactions`` parquet file, for transaction fields."""
    child_address_limit: int = 1_000
    """An ``rpc`` source's factory children: fetched by address up to this many per
    contract, by topic past it (see sources/_rpc_children.py)."""

    def __post_init__(self) -> None:
        # Either field may be given; each is filled from the other.
        if self.rpc_urls and self.rpc is None:
            object.__setattr__(self, "rpc", self.rpc_urls[0])
        elif self.rpc is not None and not self.rpc_urls:
            object.__setattr__(self, "rpc_urls", (self.rpc,))


@dataclass(frozen=True)
class ChainConfig:
    """One chain to index: block range, reorg tolerance, log source and contracts."""

    id: int
    start_block: int
    end_block: int | None
    max_reorg_depth: int
    source: SourceConfig
    contracts: tuple[ContractConfig, ...]
    field_selection: FieldSelection = FieldSelection()  # noqa: RUF009 - frozen, so shared safely
    """The chain's own selection (block handlers' blocks carry its block keys)."""

    @property
    def fetched_fields(self) -> FieldSelection:
        """Everything any event of the chain (or its block handlers) may read."""
        out = self.field_selection
        for contract in self.contracts:
            out |= contract.field_selection
        return out


@dataclass(frozen=True)
class ProjectConfig:
    """A validated ``indexer.yaml``; all paths are absolute."""

    name: str
    project_dir: Path
    config_path: Path
    handlers: Path
    database: str | None
    schema: str
    raw_events: bool
    chains: tuple[ChainConfig, ...]


def load_config(project_dir: Path, *, environ: Mapping[str, str] | None = None) -> ProjectConfig:
    """Load and validate ``indexer.yaml`` in `project_dir`.

    `environ` defaults to `os.environ`; a non-empty ``INDEXER_DATABASE_URL`` in
    it overrides the file's ``database``.  Raises `ConfigError` on any problem.
    """
    env = os.environ if environ is None else environ
    config_path = Path(project_dir) / CONFIG_FILE
    # Messages show the path as the user gave it, which is what they will recognise.
    at = Where(str(config_path))
    if not Path(project_dir).is_dir():
        raise ConfigError(f"{config_path}: the project directory {project_dir} does not exist.")
    root = Path(project_dir).resolve()
    top = read_mapping(
        load_yaml(config_path, str(config_path)), at, _TOP_KEYS, ("name", "handlers", "chains")
    )

    name = as_str(top["name"], at.key("name"))
    if not _NAME_RE.fullmatch(name):
        at.key("name").fail(
            f"{name!r} may only contain a-z, 0-9, '_' and '-', e.g. 'erc20-balances'."
        )

    handlers = resolve_path(top["handlers"], at.key("handlers"), root)
    if not handlers.is_file():
        what = " is a directory, not a .py file" if handlers.is_dir() else " does not exist"
        at.key("handlers").fail(f"the handlers module {handlers}{what}.")
    if handlers.suffix != ".py":
        at.key("handlers").fail(f"the handlers module {handlers} must be a .py file.")

    database = None if top.get("database") is None else as_str(top["database"], at.key("database"))
    if database is not None:
        _check_database(database, at.key("database"))
    if env.get(DATABASE_ENV):
        database = env[DATABASE_ENV]
        _check_database(database, Where(f"environment variable {DATABASE_ENV}"))

    if top.get("schema") is None:
        schema, origin = (
            name.replace("-", "_"),
            f" (derived from name {name!r}; set `schema:` explicitly)",
        )
    else:
        schema, origin = as_str(top["schema"], at.key("schema")), ""
    if not _SCHEMA_RE.fullmatch(schema) or len(schema.encode()) > 63 or schema.startswith("pg_"):
        at.key("schema").fail(
            f"{schema!r}{origin} is not a valid PostgreSQL schema name: it must match "
            "[a-z_][a-z0-9_]*, be at most 63 bytes long and not start with 'pg_' (reserved by PostgreSQL)."
        )

    raw_events = (
        False if top.get("raw_events") is None else as_bool(top["raw_events"], at.key("raw_events"))
    )

    chains: list[ChainConfig] = []
    seen: dict[int, int] = {}
    for i, raw in enumerate(as_list(top["chains"], at.key("chains"), what="chains")):
        chain = _chain(raw, at.key("chains").item(i), root)
        if chain.id in seen:
            at.key("chains").item(i).key("id").fail(
                f"chain id {chain.id} is already used by chains[{seen[chain.id]}]; each chain may appear once."
            )
        seen[chain.id] = i
        chains.append(chain)

    return ProjectConfig(
        name=name,
        project_dir=root,
        config_path=root / CONFIG_FILE,
        handlers=handlers,
        database=database,
        schema=schema,
        raw_events=raw_events,
        chains=tuple(chains),
    )


def _check_database(url: str, at: Where) -> None:
    """Reject URLs for other databases; libpq ``key=value`` strings pass unchecked."""
    if "://" in url and urlsplit(url).scheme not in ("postgresql", "postgres"):
        at.fail(f"{redact_url(url)!r} is not a PostgreSQL URL; it must start with postgresql://.")


def _chain(raw: object, at: Where, root: Path) -> ChainConfig:
    """Validate one ``chains[i]`` entry."""
    m = read_mapping(raw, at, _CHAIN_KEYS, ("id", "start_block", "source", "contracts"))
    chain_id = as_int(m["id"], at.key("id"), minimum=1)
    start = as_int(m["start_block"], at.key("start_block"), minimum=0)
    end = (
        None
        if m.get("end_block") is None
        else as_int(m["end_block"], at.key("end_block"), minimum=0)
    )
    if end is not None and end < start:
        at.key("end_block").fail(
            f"{end} is before start_block {start}; end_block must be >= start_block."
        )
    depth = (
        200
        if m.get("max_reorg_depth") is None
        else as_int(m["max_reorg_depth"], at.key("max_reorg_depth"), minimum=0)
    )
    source = _source(m["source"], at.key("source"), root)
    selection = read_selection(m.get("field_selection"), at.key("field_selection"))

    contracts: list[ContractConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(as_list(m["contracts"], at.key("contracts"), what="contracts")):
        contract = _contract(item, at.key("contracts").item(i), root, selection)
        if contract.name in seen:
            at.key("contracts").item(i).key("name").fail(
                f"contract name {contract.name!r} is already used by contracts[{seen[contract.name]}] "
                "of this chain; contract names must be unique within a chain."
            )
        seen[contract.name] = i
        contracts.append(contract)
    check_factories(contracts, at.key("contracts"))
    check_routing(contracts, at.key("contracts"))
    if source.file is not None:
        check_file_selection(
            source.file,
            source.blocks,
            source.transactions,
            [(at.key("field_selection"), selection)]
            + [
                (at.key("contracts").item(i).key("field_selection"), c.field_selection)
                for i, c in enumerate(contracts)
            ],
            at.key("source"),
        )
    return ChainConfig(chain_id, start, end, depth, source, tuple(contracts), selection)


def _source(raw: object, at: Where, root: Path) -> SourceConfig:
    """Validate a ``source`` mapping: exactly one of ``file`` / ``rpc``."""
    m = read_mapping(raw, at, _SOURCE_KEYS, ())
    has_file, has_rpc = m.get("file") is not None, m.get("rpc") is not None
    if has_file == has_rpc:
        at.fail(
            f"{'has both `file` and `rpc`' if has_file else 'names no source'}; give exactly one: "
            "`file: data/logs.jsonl.gz` (.jsonl, .jsonl.gz or .parquet) or `rpc: https://...`."
        )
    if has_file:
        for key in ("poll_interval", "child_address_limit"):
            if m.get(key) is not None:
                at.key(key).fail("only applies to an `rpc` source; remove it for a `file` source.")
        path = resolve_path(m["file"], at.key("file"), root)
        if not path.name.endswith(_SOURCE_SUFFIXES):
            at.key("file").fail(f"{path} must end in .jsonl, .jsonl.gz or .parquet.")
        if not path.is_file():
            at.key("file").fail(
                f"the log file {path} does not exist{' (it is a directory)' if path.exists() else ''}."
            )
        extra: dict[str, Path] = {}
        for key in ("blocks", "transactions"):
            if m.get(key) is None:
                continue
            extra[key] = resolve_path(m[key], at.key(key), root)
            if not extra[key].name.endswith(".parquet") or not extra[key].is_file():
                at.key(key).fail(f"{extra[key]} must be an existing cryo `{key}` .parquet file.")
        return SourceConfig(
            file=path, blocks=extra.get("blocks"), transactions=extra.get("transactions")
        )
    raw, where = m["rpc"], at.key("rpc")
    if isinstance(raw, list):
        if not raw:
            where.fail("is an empty list; give one URL, or a list of at least one.")
        urls: list[str] = []
        for i, item in enumerate(raw):
            url = _rpc_url(item, where.item(i))
            if url in urls:
                where.item(i).fail(
                    f"{redact_url(url)!r} is already rpc[{urls.index(url)}]; list each node once."
                )
            urls.append(url)
    else:
        urls = [_rpc_url(raw, where)]
    for key in ("blocks", "transactions"):
        if m.get(key) is not None:
            at.key(key).fail(
                "only applies to a `file` source; an `rpc` source fetches blocks and transactions itself."
            )
    interval = (
        1.0
        if m.get("poll_interval") is None
        else as_float(m["poll_interval"], at.key("poll_interval"))
    )
    limit = (
        1_000
        if m.get("child_address_limit") is None
        else as_int(m["child_address_limit"], at.key("child_address_limit"), minimum=0)
    )
    return SourceConfig(
        rpc=urls[0], poll_interval=interval, rpc_urls=tuple(urls), child_address_limit=limit
    )


def _rpc_url(raw: object, at: Where) -> str:
    url = as_str(raw, at).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        at.fail(f"{redact_url(url)!r} is not an http:// or https:// URL of a JSON-RPC node.")
    return url


def _contract(
    raw: object, at: Where, root: Path, chain_selection: FieldSelection
) -> ContractConfig:
    """Validate one ``contracts[j]`` entry and resolve its events."""
    m = read_mapping(raw, at, _CONTRACT_KEYS, ("name",))
    name = as_str(m["name"], at.key("name"))
    if not _CONTRACT_RE.fullmatch(name):
        at.key("name").fail(
            f"{name!r} must be an identifier ([A-Za-z_][A-Za-z0-9_]*), e.g. 'ERC20'."
        )
    addresses: frozenset[str] | None = None
    factory = None
    if m.get("factory") is not None:
        if m.get("addresses") is not None:
            at.key("addresses").fail(
                "cannot be given with `factory`: a factory's children are the addresses its events "
                "register; remove one of the two keys."
            )
        factory = _factory(m["factory"], at.key("factory"))
    elif m.get("addresses") is not None:
        if isinstance(m["addresses"], list) and not m["addresses"]:
            at.key("addresses").fail(
                "is empty, which matches no contract; remove the key to match every address."
            )
        found: set[str] = set()
        for i, value in enumerate(as_list(m["addresses"], at.key("addresses"), what="addresses")):
            here = at.key("addresses").item(i)
            if isinstance(value, int) and not isinstance(value, bool):
                # YAML 1.1 reads an unquoted 0x... as a hexadecimal integer.
                here.fail(
                    'was read by YAML as a number; put the address in quotes, e.g. "0xdAC1...".'
                )
            if not _ADDRESS_RE.fullmatch(address := as_str(value, here).strip()):
                here.fail(f"{address!r} is not an address: expected 0x followed by 40 hex digits.")
            found.add(address.lower())
        addresses = frozenset(found)
    events = resolve_events(m.get("events"), m.get("abi"), at, root, name)
    own = read_selection(m.get("field_selection"), at.key("field_selection"))
    return ContractConfig(name, addresses, events, chain_selection | own, factory)


def _factory(raw: object, at: Where) -> FactoryConfig:
    """Read a ``factory`` mapping; its names are checked against the chain in check_factories."""
    m = read_mapping(raw, at, _FACTORY_KEYS, _FACTORY_KEYS)
    contract = as_str(m["contract"], at.key("contract"))
    raw_events = m["event"]
    if isinstance(raw_events, list):
        if not raw_events:
            at.key("event").fail("is an empty list; name at least one event of the factory.")
        events = tuple(
            as_str(e, at.key("event").item(i))
            for i, e in enumerate(as_list(raw_events, at.key("event"), what="events"))
        )
    else:
        events = (as_str(raw_events, at.key("event")),)
    return FactoryConfig(contract, events, as_str(m["parameter"], at.key("parameter")))
