"""The files ``indexer init`` writes: config, entities and handlers, a test, a README.

Pure rendering from the checked :class:`Answers` (``_init.py`` gathers them):
every file's text is computed before the first one is written, so a refused
init leaves nothing behind.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._redact import redact_url
from ._codegen import (
    GENERATED_FILE,
    EventModel,
    event_models,
    field_name,
    generate_types,
    snake_case,
)

if TYPE_CHECKING:
    from pathlib import Path

    from ..abi import EventSpec

__all__ = ["Answers", "render"]


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
