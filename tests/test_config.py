"""Tests for `indexer.config`: loading and validating ``indexer.yaml``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from indexer import ConfigError
from indexer._redact import redact_url
from indexer.config import (
    ChainConfig,
    ContractConfig,
    ProjectConfig,
    SourceConfig,
    load_config,
)

TRANSFER = "event Transfer(address indexed from, address indexed to, uint256 value)"
APPROVAL = "event Approval(address indexed owner, address indexed spender, uint256 value)"
TRANSFER_TOPIC0 = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ADDR_A = "0x" + "a" * 40
ADDR_B = "0x" + "b" * 40
MIXED_CASE = "0xdAC17F958D2ee523a2206206994597C13D831ec7"

ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "event",
        "name": "Transfer",
        "anonymous": False,
        "inputs": [
            {"name": "from", "type": "address", "indexed": True},
            {"name": "to", "type": "address", "indexed": True},
            {"name": "value", "type": "uint256", "indexed": False},
        ],
    },
    {
        "type": "event",
        "name": "Approval",
        "anonymous": False,
        "inputs": [
            {"name": "owner", "type": "address", "indexed": True},
            {"name": "spender", "type": "address", "indexed": True},
            {"name": "value", "type": "uint256", "indexed": False},
        ],
    },
    {
        "type": "function",
        "name": "transfer",
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": "to", "type": "address"},
            {"name": "value", "type": "uint256"},
        ],
        "outputs": [{"name": "", "type": "bool"}],
    },
]


def base_config() -> dict[str, Any]:
    """A minimal valid config; tests mutate a fresh copy."""
    return {
        "name": "erc20-balances",
        "handlers": "handlers.py",
        "chains": [
            {
                "id": 1,
                "start_block": 100,
                "source": {"file": "data/logs.jsonl.gz"},
                "contracts": [{"name": "ERC20", "events": [TRANSFER]}],
            }
        ],
    }


def contract(config: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The `index`-th contract of the first chain of `config`."""
    result: dict[str, Any] = config["chains"][0]["contracts"][index]
    return result


def make_project(tmp_path: Path, config: dict[str, Any] | str | None = None) -> Path:
    """Write a project (indexer.yaml, handlers.py, a log file, an ABI) under `tmp_path`."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True, exist_ok=True)
    (project / "abis").mkdir(exist_ok=True)
    (project / "handlers.py").write_text("# handlers\n")
    (project / "data" / "logs.jsonl.gz").write_bytes(b"")
    (project / "data" / "logs.parquet").write_bytes(b"")
    (project / "abis" / "erc20.json").write_text(json.dumps(ERC20_ABI))
    if config is None:
        config = base_config()
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    (project / "indexer.yaml").write_text(text)
    return project


def error_of(project: Path, environ: dict[str, str] | None = None) -> str:
    """The message of the ConfigError that loading `project` raises."""
    with pytest.raises(ConfigError) as info:
        load_config(project, environ={} if environ is None else environ)
    return str(info.value)


def load_error(tmp_path: Path, config: dict[str, Any] | str) -> str:
    """Write `config` as a project and return the message of the ConfigError it raises."""
    return error_of(make_project(tmp_path, config))


# --------------------------------------------------------------------------- valid configs


def test_full_config(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "name": "erc20-balances",
        "handlers": "handlers.py",
        "database": "postgresql://indexer:pw@db.example/indexer",
        "schema": "erc20",
        "raw_events": True,
        "chains": [
            {
                "id": 1,
                "start_block": 18426253,
                "end_block": 18426303,
                "max_reorg_depth": 64,
                "source": {"file": "data/logs.jsonl.gz"},
                "contracts": [
                    {
                        "name": "USDT",
                        "addresses": [MIXED_CASE, ADDR_A],
                        "events": [TRANSFER, APPROVAL],
                    },
                    {"name": "Token_2", "addresses": [ADDR_B], "abi": "abis/erc20.json"},
                ],
            },
            {
                "id": 10,
                "start_block": 0,
                "source": {"rpc": "https://node.example/rpc", "poll_interval": 2.5},
                "contracts": [{"name": "ERC20", "events": ["Transfer"], "abi": "abis/erc20.json"}],
            },
        ],
    }
    project = make_project(tmp_path, config)
    cfg = load_config(project, environ={})

    root = project.resolve()
    assert isinstance(cfg, ProjectConfig)
    assert cfg.name == "erc20-balances"
    assert cfg.project_dir == root
    assert cfg.config_path == root / "indexer.yaml"
    assert cfg.handlers == root / "handlers.py"
    assert cfg.database == "postgresql://indexer:pw@db.example/indexer"
    assert cfg.schema == "erc20"
    assert cfg.raw_events is True
    assert len(cfg.chains) == 2

    main, optimism = cfg.chains
    assert isinstance(main, ChainConfig)
    assert (main.id, main.start_block, main.end_block, main.max_reorg_depth) == (
        1,
        18426253,
        18426303,
        64,
    )
    assert main.source == SourceConfig(file=root / "data" / "logs.jsonl.gz")
    usdt, token2 = main.contracts
    assert isinstance(usdt, ContractConfig)
    assert usdt.name == "USDT"
    assert usdt.addresses == frozenset({MIXED_CASE.lower(), ADDR_A})
    assert [e.name for e in usdt.events] == ["Transfer", "Approval"]
    assert usdt.events[0].signature == "Transfer(address,address,uint256)"
    assert usdt.events[0].topic0 == TRANSFER_TOPIC0
    assert [p.indexed for p in usdt.events[0].inputs] == [True, True, False]
    # `abi` without `events` indexes every event of the ABI.
    assert token2.addresses == frozenset({ADDR_B})
    assert sorted(e.name for e in token2.events) == ["Approval", "Transfer"]

    assert optimism.id == 10
    assert optimism.end_block is None
    assert optimism.source == SourceConfig(rpc="https://node.example/rpc", poll_interval=2.5)
    assert [e.name for e in optimism.contracts[0].events] == ["Transfer"]


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config(make_project(tmp_path), environ={})
    assert cfg.schema == "erc20_balances"
    assert cfg.database is None
    assert cfg.raw_events is False
    chain = cfg.chains[0]
    assert chain.end_block is None
    assert chain.max_reorg_depth == 200
    assert chain.contracts[0].addresses is None


def test_rpc_source_defaults(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["source"] = {"rpc": "http://localhost:8545"}
    cfg = load_config(make_project(tmp_path, config), environ={})
    source = cfg.chains[0].source
    assert source == SourceConfig(file=None, rpc="http://localhost:8545", poll_interval=1.0)


def test_integer_poll_interval_becomes_float(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["source"] = {"rpc": "http://localhost:8545", "poll_interval": 3}
    cfg = load_config(make_project(tmp_path, config), environ={})
    assert cfg.chains[0].source.poll_interval == 3.0
    assert isinstance(cfg.chains[0].source.poll_interval, float)


def test_absolute_source_path(tmp_path: Path) -> None:
    logs = tmp_path / "elsewhere" / "logs.parquet"
    logs.parent.mkdir()
    logs.write_bytes(b"")
    config = base_config()
    config["chains"][0]["source"] = {"file": str(logs)}
    cfg = load_config(make_project(tmp_path, config), environ={})
    assert cfg.chains[0].source.file == logs.resolve()


def test_jsonl_source_suffix(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project / "data" / "plain.jsonl").write_text("")
    config = base_config()
    config["chains"][0]["source"] = {"file": "data/plain.jsonl"}
    (project / "indexer.yaml").write_text(yaml.safe_dump(config))
    assert load_config(project, environ={}).chains[0].source.file == (
        project.resolve() / "data" / "plain.jsonl"
    )


def test_relative_project_dir_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(Path("project"), environ={})
    assert cfg.project_dir.is_absolute()
    assert cfg.handlers == (tmp_path / "project" / "handlers.py").resolve()
    assert cfg.chains[0].source.file is not None
    assert cfg.chains[0].source.file.is_absolute()


def test_null_optional_keys_count_as_absent(tmp_path: Path) -> None:
    text = """\
name: demo
handlers: handlers.py
database:
schema:
raw_events:
chains:
  - id: 5
    start_block: 0
    end_block:
    max_reorg_depth:
    source:
      file: data/logs.jsonl.gz
    contracts:
      - name: ERC20
        addresses:
        events: ["event Transfer(address indexed from, address indexed to, uint256 value)"]
"""
    cfg = load_config(make_project(tmp_path, text), environ={})
    assert (cfg.database, cfg.schema, cfg.raw_events) == (None, "demo", False)
    assert (cfg.chains[0].end_block, cfg.chains[0].max_reorg_depth) == (None, 200)
    assert cfg.chains[0].contracts[0].addresses is None


def test_yaml_anchors_and_merge_keys(tmp_path: Path) -> None:
    text = f"""\
name: demo
handlers: handlers.py
chains:
  - &mainnet
    id: 1
    start_block: 10
    source: {{file: data/logs.jsonl.gz}}
    contracts:
      - name: ERC20
        events: ["{TRANSFER}"]
  - <<: *mainnet
    id: 2
"""
    cfg = load_config(make_project(tmp_path, text), environ={})
    assert [c.id for c in cfg.chains] == [1, 2]
    assert cfg.chains[1].start_block == 10


def test_end_block_equal_to_start_block(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["end_block"] = 100
    assert load_config(make_project(tmp_path, config), environ={}).chains[0].end_block == 100


def test_zero_reorg_depth_and_start_block(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0].update(start_block=0, max_reorg_depth=0)
    chain = load_config(make_project(tmp_path, config), environ={}).chains[0]
    assert (chain.start_block, chain.max_reorg_depth) == (0, 0)


# --------------------------------------------------------------------------- database / env


def test_env_overrides_database(tmp_path: Path) -> None:
    config = base_config()
    config["database"] = "postgresql://file@host/db"
    project = make_project(tmp_path, config)
    env = {"INDEXER_DATABASE_URL": "postgresql://env@host/db"}
    assert load_config(project, environ=env).database == "postgresql://env@host/db"
    assert load_config(project, environ={}).database == "postgresql://file@host/db"


def test_env_sets_database_when_file_has_none(tmp_path: Path) -> None:
    env = {"INDEXER_DATABASE_URL": "postgresql://env@host/db"}
    assert load_config(make_project(tmp_path), environ=env).database == "postgresql://env@host/db"


def test_empty_env_value_is_ignored(tmp_path: Path) -> None:
    cfg = load_config(make_project(tmp_path), environ={"INDEXER_DATABASE_URL": ""})
    assert cfg.database is None


def test_environ_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEXER_DATABASE_URL", "postgresql://os@host/db")
    assert load_config(make_project(tmp_path)).database == "postgresql://os@host/db"
    monkeypatch.delenv("INDEXER_DATABASE_URL")
    assert load_config(make_project(tmp_path)).database is None


def test_libpq_keyword_database_string_is_accepted(tmp_path: Path) -> None:
    config = base_config()
    config["database"] = "host=localhost dbname=indexer"
    assert load_config(make_project(tmp_path, config), environ={}).database == config["database"]


def test_non_postgres_database_url_is_rejected_without_leaking_password(tmp_path: Path) -> None:
    config = base_config()
    config["database"] = "mysql://root:hunter2@db/x"
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: database:" in msg
    assert "PostgreSQL" in msg
    assert "hunter2" not in msg


def test_bad_env_database_names_the_variable(tmp_path: Path) -> None:
    msg = error_of(make_project(tmp_path), {"INDEXER_DATABASE_URL": "sqlite://u:hunter2@x/y"})
    assert "INDEXER_DATABASE_URL" in msg
    assert "hunter2" not in msg


# --------------------------------------------------------------------------- ABI handling


def test_bare_names_select_abi_events(tmp_path: Path) -> None:
    config = base_config()
    contract(config).update(events=["Approval"], abi="abis/erc20.json")
    cfg = load_config(make_project(tmp_path, config), environ={})
    assert [e.name for e in cfg.chains[0].contracts[0].events] == ["Approval"]


def test_signatures_plus_abi_adds_all_abi_events(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    other = [{"type": "event", "name": "Sync", "anonymous": False, "inputs": []}]
    (project / "abis" / "pair.json").write_text(json.dumps(other))
    config = base_config()
    contract(config).update(events=[TRANSFER], abi="abis/pair.json")
    (project / "indexer.yaml").write_text(yaml.safe_dump(config))
    events = load_config(project, environ={}).chains[0].contracts[0].events
    assert [e.name for e in events] == ["Transfer", "Sync"]


def test_mixed_bare_names_and_signatures(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    other = [{"type": "event", "name": "Sync", "anonymous": False, "inputs": []}]
    (project / "abis" / "pair.json").write_text(json.dumps([*ERC20_ABI, *other]))
    config = base_config()
    contract(config).update(events=["Sync", TRANSFER], abi="abis/pair.json")
    (project / "indexer.yaml").write_text(yaml.safe_dump(config))
    events = load_config(project, environ={}).chains[0].contracts[0].events
    # Approval is in the ABI but not selected: bare names restrict the ABI's events.
    assert [e.name for e in events] == ["Sync", "Transfer"]


def test_absolute_abi_path(tmp_path: Path) -> None:
    abi = tmp_path / "shared.json"
    abi.write_text(json.dumps(ERC20_ABI))
    config = base_config()
    contract(config).update(events=["Transfer"], abi=str(abi))
    cfg = load_config(make_project(tmp_path, config), environ={})
    assert cfg.chains[0].contracts[0].events[0].topic0 == TRANSFER_TOPIC0


def test_anonymous_abi_events_are_skipped_when_adding_all(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    anon = {"type": "event", "name": "Anon", "anonymous": True, "inputs": []}
    (project / "abis" / "anon.json").write_text(json.dumps([*ERC20_ABI, anon]))
    config = base_config()
    contract(config).update(abi="abis/anon.json")
    del contract(config)["events"]
    (project / "indexer.yaml").write_text(yaml.safe_dump(config))
    events = load_config(project, environ={}).chains[0].contracts[0].events
    assert sorted(e.name for e in events) == ["Approval", "Transfer"]


def test_selecting_an_anonymous_abi_event_is_an_error(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    anon = {"type": "event", "name": "Anon", "anonymous": True, "inputs": []}
    (project / "abis" / "anon.json").write_text(json.dumps([anon]))
    config = base_config()
    contract(config).update(events=["Anon"], abi="abis/anon.json")
    (project / "indexer.yaml").write_text(yaml.safe_dump(config))
    msg = error_of(project)
    assert "indexer.yaml: chains[0].contracts[0].events[0]:" in msg
    assert "anonymous" in msg


def test_anonymous_signature_is_an_error(tmp_path: Path) -> None:
    config = base_config()
    contract(config)["events"] = ["event Anon(address indexed a) anonymous"]
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[0].events[0]:" in msg
    assert "anonymous" in msg
    assert "no topic0" in msg


# --------------------------------------------------------------------------- routing


def test_same_event_in_disjoint_explicit_contracts_is_fine(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["contracts"] = [
        {"name": "A", "addresses": [ADDR_A], "events": [TRANSFER]},
        {"name": "B", "addresses": [ADDR_B], "events": [TRANSFER]},
    ]
    cfg = load_config(make_project(tmp_path, config), environ={})
    assert [c.name for c in cfg.chains[0].contracts] == ["A", "B"]


def test_same_wildcard_event_on_different_chains_is_fine(tmp_path: Path) -> None:
    config = base_config()
    second = json.loads(json.dumps(config["chains"][0]))
    second["id"] = 2
    config["chains"].append(second)
    assert len(load_config(make_project(tmp_path, config), environ={}).chains) == 2


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (None, None, "has no `addresses`"),
        (None, [ADDR_B], "contract 'A' has no `addresses`"),
        ([ADDR_A], None, "contract 'B' has no `addresses`"),
        ([ADDR_A, ADDR_B], [ADDR_B.upper().replace("0X", "0x")], f"both list {ADDR_B}"),
    ],
)
def test_ambiguous_routing(
    tmp_path: Path, first: list[str] | None, second: list[str] | None, expected: str
) -> None:
    config = base_config()
    a: dict[str, Any] = {"name": "A", "events": [TRANSFER]}
    b: dict[str, Any] = {"name": "B", "events": [APPROVAL, TRANSFER]}
    if first is not None:
        a["addresses"] = first
    if second is not None:
        b["addresses"] = second
    config["chains"][0]["contracts"] = [a, b]
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[1]:" in msg
    assert "'A'" in msg
    assert "'B'" in msg
    assert "Transfer(address,address,uint256)" in msg
    assert expected in msg


# --------------------------------------------------------------------------- file-level errors


def test_missing_project_dir(tmp_path: Path) -> None:
    msg = error_of(tmp_path / "nope")
    assert str(tmp_path / "nope") in msg
    assert "does not exist" in msg


def test_missing_indexer_yaml_names_the_path(tmp_path: Path) -> None:
    msg = error_of(tmp_path)
    assert str(tmp_path / "indexer.yaml") in msg
    assert "not found" in msg


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    msg = load_error(tmp_path, "name: demo\nhandlers: handlers.py\nchains: [\n  {id: 1,\n")
    assert "indexer.yaml: line " in msg
    assert "column" in msg
    assert "invalid YAML" in msg


def test_yaml_error_line_number_is_one_based(tmp_path: Path) -> None:
    msg = load_error(tmp_path, "name: demo\nhandlers: handlers.py\n  bad: indent\n")
    assert "line 3" in msg


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    msg = load_error(tmp_path, "name: a\nname: b\n")
    assert "duplicate key 'name'" in msg
    assert "line 2" in msg


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_not_a_mapping(tmp_path: Path, text: str) -> None:
    msg = load_error(tmp_path, text)
    assert "indexer.yaml: must be a mapping" in msg


# --------------------------------------------------------------------------- key errors


def test_unknown_top_level_key_suggests_closest(tmp_path: Path) -> None:
    config = base_config()
    config["raw_event"] = True
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: raw_event: unknown key" in msg
    assert "Did you mean 'raw_events'?" in msg
    assert "name, handlers, database, schema, raw_events, chains" in msg


@pytest.mark.parametrize(
    ("where", "key", "path", "suggestion"),
    [
        ("chain", "start", "chains[0].start", "start_block"),
        ("source", "fiel", "chains[0].source.fiel", "file"),
        ("contract", "address", "chains[0].contracts[0].address", "addresses"),
        ("contract", "zzz", "chains[0].contracts[0].zzz", None),
    ],
)
def test_unknown_nested_key(
    tmp_path: Path, where: str, key: str, path: str, suggestion: str | None
) -> None:
    config = base_config()
    target = {
        "chain": config["chains"][0],
        "source": config["chains"][0]["source"],
        "contract": contract(config),
    }[where]
    target[key] = 1
    msg = load_error(tmp_path, config)
    assert f"indexer.yaml: {path}: unknown key" in msg
    assert "allowed" in msg
    if suggestion:
        assert f"Did you mean {suggestion!r}?" in msg
    else:
        assert "Did you mean" not in msg


def test_non_text_key(tmp_path: Path) -> None:
    text = yaml.safe_dump(base_config()) + "yes: 1\n"
    msg = load_error(tmp_path, text)
    assert "True" in msg
    assert "not a text key" in msg


@pytest.mark.parametrize(
    ("remove", "path"),
    [
        (("name",), "name"),
        (("handlers",), "handlers"),
        (("chains",), "chains"),
        (("chains", "id"), "chains[0].id"),
        (("chains", "start_block"), "chains[0].start_block"),
        (("chains", "source"), "chains[0].source"),
        (("chains", "contracts"), "chains[0].contracts"),
        (("contracts", "name"), "chains[0].contracts[0].name"),
    ],
)
def test_missing_required_key(tmp_path: Path, remove: tuple[str, ...], path: str) -> None:
    config = base_config()
    if len(remove) == 1:
        del config[remove[0]]
    elif remove[0] == "chains":
        del config["chains"][0][remove[1]]
    else:
        del contract(config)[remove[1]]
    msg = load_error(tmp_path, config)
    assert f"indexer.yaml: {path}: this required key is missing" in msg


# --------------------------------------------------------------------------- type/value errors


def _set(config: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path like ``chains.0.source.file`` in `config`."""
    *parents, last = path.split(".")
    node: Any = config
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value


@pytest.mark.parametrize(
    ("path", "value", "key_path", "expected"),
    [
        ("name", 123, "name", "must be a string, got a number (123)"),
        ("name", "", "name", "must not be empty"),
        ("handlers", ["h.py"], "handlers", "must be a string, got a list"),
        ("raw_events", "yes", "raw_events", "must be true or false, got the string 'yes'"),
        ("raw_events", 1, "raw_events", "must be true or false"),
        ("database", 5, "database", "must be a string"),
        ("schema", 5, "schema", "must be a string"),
        ("chains", {"id": 1}, "chains", "must be a list of chains, got a mapping"),
        ("chains", [], "chains", "must list at least one"),
        ("chains.0", "mainnet", "chains[0]", "must be a mapping"),
        ("chains.0.id", True, "chains[0].id", "must be an integer, got a boolean (true)"),
        ("chains.0.id", 1.0, "chains[0].id", "must be an integer, got a number (1.0)"),
        ("chains.0.id", "1", "chains[0].id", "must be an integer, got the string '1'"),
        ("chains.0.id", 0, "chains[0].id", "must be an integer >= 1, got 0"),
        ("chains.0.id", -5, "chains[0].id", "must be an integer >= 1, got -5"),
        ("chains.0.start_block", -1, "chains[0].start_block", ">= 0, got -1"),
        ("chains.0.start_block", False, "chains[0].start_block", "got a boolean (false)"),
        ("chains.0.end_block", "latest", "chains[0].end_block", "must be an integer"),
        ("chains.0.end_block", 99, "chains[0].end_block", "before start_block 100"),
        ("chains.0.max_reorg_depth", -1, "chains[0].max_reorg_depth", ">= 0, got -1"),
        ("chains.0.max_reorg_depth", True, "chains[0].max_reorg_depth", "got a boolean"),
        ("chains.0.source", "data/logs.jsonl.gz", "chains[0].source", "must be a mapping"),
        ("chains.0.source.file", 5, "chains[0].source.file", "must be a string"),
        ("chains.0.contracts", [], "chains[0].contracts", "must list at least one"),
        ("chains.0.contracts", "ERC20", "chains[0].contracts", "must be a list of contracts"),
        ("chains.0.contracts.0", "ERC20", "chains[0].contracts[0]", "must be a mapping"),
        ("chains.0.contracts.0.name", 7, "chains[0].contracts[0].name", "must be a string"),
        (
            "chains.0.contracts.0.events",
            TRANSFER,
            "chains[0].contracts[0].events",
            "must be a list of events",
        ),
        ("chains.0.contracts.0.events", [], "chains[0].contracts[0].events", "at least one"),
        ("chains.0.contracts.0.events.0", 5, "chains[0].contracts[0].events[0]", "a string"),
        (
            "chains.0.contracts.0.addresses",
            ADDR_A,
            "chains[0].contracts[0].addresses",
            "must be a list of addresses",
        ),
        ("chains.0.contracts.0.abi", 5, "chains[0].contracts[0].abi", "must be a string"),
    ],
)
def test_wrong_types_and_values(
    tmp_path: Path, path: str, value: Any, key_path: str, expected: str
) -> None:
    config = base_config()
    _set(config, path, value)
    msg = load_error(tmp_path, config)
    assert f"indexer.yaml: {key_path}: " in msg
    assert expected in msg


@pytest.mark.parametrize("name", ["ERC20", "erc 20", "erc20.balances", "ünïcode"])
def test_bad_project_name(tmp_path: Path, name: str) -> None:
    config = base_config()
    config["name"] = name
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: name:" in msg
    assert "a-z, 0-9" in msg


@pytest.mark.parametrize("schema", ["Erc20", "1abc", "with-dash", "a" * 64, "pg_stuff", "é"])
def test_bad_schema(tmp_path: Path, schema: str) -> None:
    config = base_config()
    config["schema"] = schema
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: schema:" in msg
    assert "not a valid PostgreSQL schema name" in msg


def test_schema_of_63_bytes_is_fine(tmp_path: Path) -> None:
    config = base_config()
    config["schema"] = "a" * 63
    assert load_config(make_project(tmp_path, config), environ={}).schema == "a" * 63


def test_bad_schema_derived_from_name_says_so(tmp_path: Path) -> None:
    config = base_config()
    config["name"] = "1inch"
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: schema:" in msg
    assert "derived from name '1inch'" in msg


@pytest.mark.parametrize("name", ["1abc", "has-dash", "a.b", ""])
def test_bad_contract_name(tmp_path: Path, name: str) -> None:
    config = base_config()
    contract(config)["name"] = name
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[0].name:" in msg


# --------------------------------------------------------------------------- files on disk


def test_missing_handlers_names_resolved_path(tmp_path: Path) -> None:
    config = base_config()
    config["handlers"] = "missing.py"
    project = make_project(tmp_path, config)
    msg = error_of(project)
    assert "indexer.yaml: handlers:" in msg
    assert str(project.resolve() / "missing.py") in msg


def test_handlers_directory_is_rejected(tmp_path: Path) -> None:
    config = base_config()
    config["handlers"] = "data"
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: handlers:" in msg
    assert "is a directory" in msg


def test_handlers_must_be_python_file(tmp_path: Path) -> None:
    config = base_config()
    config["handlers"] = "data/logs.parquet"
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: handlers:" in msg
    assert ".py" in msg


def test_missing_source_file_names_resolved_path(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["source"] = {"file": "data/other.jsonl"}
    project = make_project(tmp_path, config)
    msg = error_of(project)
    assert "indexer.yaml: chains[0].source.file:" in msg
    assert str(project.resolve() / "data" / "other.jsonl") in msg
    assert "does not exist" in msg


def test_source_file_bad_suffix(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["source"] = {"file": "handlers.py"}
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].source.file:" in msg
    assert ".jsonl, .jsonl.gz or .parquet" in msg


@pytest.mark.parametrize(
    ("source", "path", "expected"),
    [
        (
            {"file": "data/logs.jsonl.gz", "rpc": "http://x"},
            "chains[0].source",
            "both `file` and `rpc`",
        ),
        ({}, "chains[0].source", "names no source"),
        ({"poll_interval": 1.0}, "chains[0].source", "names no source"),
        (
            {"file": "data/logs.jsonl.gz", "poll_interval": 2},
            "chains[0].source.poll_interval",
            "only applies to an `rpc` source",
        ),
        ({"rpc": "ftp://node"}, "chains[0].source.rpc", "not an http:// or https:// URL"),
        ({"rpc": "localhost:8545"}, "chains[0].source.rpc", "not an http:// or https:// URL"),
        ({"rpc": "http://x", "poll_interval": 0}, "chains[0].source.poll_interval", "> 0"),
        ({"rpc": "http://x", "poll_interval": -1.5}, "chains[0].source.poll_interval", "> 0"),
        (
            {"rpc": "http://x", "poll_interval": float("inf")},
            "chains[0].source.poll_interval",
            "> 0",
        ),
        (
            {"rpc": "http://x", "poll_interval": True},
            "chains[0].source.poll_interval",
            "must be a number, got a boolean",
        ),
        (
            {"rpc": "http://x", "poll_interval": "1s"},
            "chains[0].source.poll_interval",
            "must be a number",
        ),
    ],
)
def test_bad_source(tmp_path: Path, source: dict[str, Any], path: str, expected: str) -> None:
    config = base_config()
    config["chains"][0]["source"] = source
    msg = load_error(tmp_path, config)
    assert f"indexer.yaml: {path}:" in msg
    assert expected in msg


def test_bad_rpc_url_does_not_leak_password(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["source"] = {"rpc": "ws://user:hunter2@node:8546"}
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].source.rpc:" in msg
    assert "hunter2" not in msg


# --------------------------------------------------------------------------- duplicates


def test_duplicate_chain_ids(tmp_path: Path) -> None:
    config = base_config()
    config["chains"].append(json.loads(json.dumps(config["chains"][0])))
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[1].id:" in msg
    assert "chain id 1 is already used by chains[0]" in msg


def test_duplicate_contract_names(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["contracts"] = [
        {"name": "ERC20", "addresses": [ADDR_A], "events": [TRANSFER]},
        {"name": "ERC20", "addresses": [ADDR_B], "events": [TRANSFER]},
    ]
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[1].name:" in msg
    assert "'ERC20' is already used by contracts[0]" in msg


def test_duplicate_event_in_contract(tmp_path: Path) -> None:
    config = base_config()
    # Same topic0 even though the indexed flags and names differ.
    contract(config)["events"] = [TRANSFER, "event Transfer(address a, address b, uint256 c)"]
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[0].events[1]:" in msg
    assert "events[0]" in msg
    assert TRANSFER_TOPIC0 in msg
    assert "list each event once" in msg


def test_duplicate_event_between_signature_and_abi(tmp_path: Path) -> None:
    config = base_config()
    contract(config).update(events=[TRANSFER], abi="abis/erc20.json")
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[0].abi:" in msg
    assert "ABI event Transfer(address,address,uint256)" in msg


def test_duplicate_bare_name(tmp_path: Path) -> None:
    config = base_config()
    contract(config).update(events=["Transfer", "Transfer"], abi="abis/erc20.json")
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[0].events[1]:" in msg


def test_same_event_name_different_topic0_is_fine(tmp_path: Path) -> None:
    config = base_config()
    contract(config)["events"] = [TRANSFER, "event Transfer(address indexed from, uint256 value)"]
    events = load_config(make_project(tmp_path, config), environ={}).chains[0].contracts[0].events
    assert len({e.topic0 for e in events}) == 2


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    "address",
    ["0x1234", "0x" + "g" * 40, "a" * 42, "0x" + "a" * 41, "0X" + "a" * 40, ""],
)
def test_invalid_address(tmp_path: Path, address: str) -> None:
    config = base_config()
    contract(config)["addresses"] = [ADDR_A, address]
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[0].addresses[1]:" in msg


def test_unquoted_address_read_as_number(tmp_path: Path) -> None:
    text = f"""\
name: demo
handlers: handlers.py
chains:
  - id: 1
    start_block: 0
    source: {{file: data/logs.jsonl.gz}}
    contracts:
      - name: ERC20
        addresses: [{MIXED_CASE}]
        events: ["{TRANSFER}"]
"""
    msg = load_error(tmp_path, text)
    assert "indexer.yaml: chains[0].contracts[0].addresses[0]:" in msg
    assert "quotes" in msg


def test_empty_address_list(tmp_path: Path) -> None:
    config = base_config()
    contract(config)["addresses"] = []
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[0].addresses:" in msg
    assert "remove the key" in msg


def test_duplicate_addresses_are_merged(tmp_path: Path) -> None:
    config = base_config()
    contract(config)["addresses"] = [ADDR_A, ADDR_A.upper().replace("0X", "0x")]
    cfg = load_config(make_project(tmp_path, config), environ={})
    assert cfg.chains[0].contracts[0].addresses == frozenset({ADDR_A})


# --------------------------------------------------------------------------- events


def test_invalid_event_signature_message(tmp_path: Path) -> None:
    config = base_config()
    contract(config)["events"] = [TRANSFER, APPROVAL, "event Foo(uint257 x)"]
    msg = load_error(tmp_path, config)
    assert msg.startswith(str(tmp_path / "project" / "indexer.yaml"))
    assert (
        "indexer.yaml: chains[0].contracts[0].events[2]: 'event Foo(uint257 x)' is not a "
        "valid event signature: "
    ) in msg
    assert "uint257" in msg
    assert msg.endswith(
        'Write it as in Solidity, e.g. "event Transfer(address indexed from, '
        'address indexed to, uint256 value)".'
    )


def test_invalid_event_in_second_contract(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["contracts"].append(
        {"name": "Other", "events": [APPROVAL, "event Broken(address"]}
    )
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[1].events[1]:" in msg
    assert "not a valid event signature" in msg


def test_bare_name_without_abi(tmp_path: Path) -> None:
    config = base_config()
    contract(config)["events"] = ["Transfer"]
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[0].events[0]:" in msg
    assert "bare event name" in msg
    assert "abi" in msg


def test_event_not_in_abi(tmp_path: Path) -> None:
    config = base_config()
    contract(config).update(events=["Transfer", "Aproval"], abi="abis/erc20.json")
    project = make_project(tmp_path, config)
    msg = error_of(project)
    assert "indexer.yaml: chains[0].contracts[0].events[1]:" in msg
    assert "'Aproval' is not in the ABI" in msg
    assert str(project.resolve() / "abis" / "erc20.json") in msg
    assert "Did you mean 'Approval'?" in msg
    assert "Approval, Transfer" in msg


def test_contract_without_events(tmp_path: Path) -> None:
    config = base_config()
    del contract(config)["events"]
    msg = load_error(tmp_path, config)
    assert "indexer.yaml: chains[0].contracts[0]:" in msg
    assert "indexes no events" in msg


def test_abi_with_only_anonymous_events_indexes_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    anon = {"type": "event", "name": "Anon", "anonymous": True, "inputs": []}
    (project / "abis" / "anon.json").write_text(json.dumps([anon]))
    config = base_config()
    contract(config).update(abi="abis/anon.json")
    del contract(config)["events"]
    (project / "indexer.yaml").write_text(yaml.safe_dump(config))
    assert "indexes no events" in error_of(project)


def test_missing_abi_file(tmp_path: Path) -> None:
    config = base_config()
    contract(config)["abi"] = "abis/missing.json"
    project = make_project(tmp_path, config)
    msg = error_of(project)
    assert "indexer.yaml: chains[0].contracts[0].abi:" in msg
    assert str(project.resolve() / "abis" / "missing.json") in msg
    assert "does not exist" in msg


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"type": "event",\n "name": }]', "is not valid JSON (line 2, column"),
        ('{"type": "event"}', "must hold a JSON list (a standard ABI), got an object"),
        ('{"abi": []}', "compiler artifact"),
        ('["event Transfer()"]', "entry 0 must be a JSON object, got a string"),
        ("[null]", "entry 0 must be a JSON object, got null"),
    ],
)
def test_bad_abi_file(tmp_path: Path, content: str, expected: str) -> None:
    project = make_project(tmp_path)
    (project / "abis" / "bad.json").write_text(content)
    config = base_config()
    contract(config)["abi"] = "abis/bad.json"
    (project / "indexer.yaml").write_text(yaml.safe_dump(config))
    msg = error_of(project)
    assert "indexer.yaml: chains[0].contracts[0].abi:" in msg
    assert str(project.resolve() / "abis" / "bad.json") in msg
    assert expected in msg


def test_error_is_one_paragraph(tmp_path: Path) -> None:
    config = base_config()
    contract(config)["events"] = ["event Foo(uint257 x)"]
    assert "\n" not in load_error(tmp_path, config)


# --------------------------------------------------------------------------- redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:secret@host/db", "postgresql://user:***@host/db"),
        (
            "postgresql://user:secret@host:5432/db?sslmode=require",
            "postgresql://user:***@host:5432/db?sslmode=require",
        ),
        ("postgres://:secret@host/db", "postgres://:***@host/db"),
        ("postgresql://user:se/cr@et@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("postgresql://host/db", "postgresql://host/db"),
        ("postgresql:///db?host=/tmp", "postgresql:///db?host=/tmp"),
        (
            "postgresql://host/db?user=u&password=secret&sslmode=disable",
            "postgresql://host/db?user=u&password=***&sslmode=disable",
        ),
        ("http://user:secret@localhost:8545", "http://user:***@localhost:8545"),
        ("https://user:secret@node.example/rpc", "https://user:***@node.example/rpc"),
        ("http://localhost:8545", "http://localhost:8545"),
        ("https://node.example/rpc", "https://node.example/rpc"),
        (
            "https://mainnet.infura.io/v3/9aa3d95b3bc440fa88ea12eaa4456161",
            "https://mainnet.infura.io/v3/***",
        ),
        (
            "https://eth-mainnet.g.alchemy.com/v2/secretKeyAbc123XYZ456def",
            "https://eth-mainnet.g.alchemy.com/v2/***",
        ),
        ("https://node.example/rpc?apikey=secret&x=1", "https://node.example/rpc?apikey=***&x=1"),
        ("https://node.example/?token=secret", "https://node.example/?token=***"),
        ("host=localhost password=secret dbname=x", "host=localhost password=*** dbname=x"),
        ("host=localhost password='sec ret' dbname=x", "host=localhost password=*** dbname=x"),
        ("host=localhost dbname=x", "host=localhost dbname=x"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    redacted = redact_url(url)
    assert redacted == expected
    for secret in ("secret", "sec ret", "se/cr@et", "9aa3d95b3bc440fa88ea12eaa4456161"):
        assert secret not in redacted
