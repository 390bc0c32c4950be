"""The layers of docs/design.md, checked on the source: who may import whom.

Every ``import`` of every module under ``src/indexer`` is read with ``ast``:
at module level, inside functions and under ``TYPE_CHECKING`` alike (a
type-only import is a dependency too).  Each rule of the layer diagram is
one test; a failure names the file, the line and the import.

    cli ──▶ runtime ──▶ sources, store, persist, handlers
    cli ──▶ abi  (`indexer init` and `codegen` read ABI files and event types)
    cli ──▶ api ──▶ persist, store  (the HTTP API reads the database; it never sees the runtime)
    handlers ──▶ store, config      sources ──▶ abi      persist ──▶ store
    config ──▶ abi                  everything ──▶ the leaves (_errors, _lazy, _metrics, _redact, ...)
    testing ──▶ the public face (``__init__``) of every package but cli
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

#: Top-level modules every layer may use: they import nothing of indexer.
LEAVES = frozenset({"_errors", "_fields", "_gc", "_lazy", "_metrics", "_redact"})

#: The diagram: the indexer components each component may import.
ALLOWED: dict[str, frozenset[str]] = {
    "leaf": frozenset(),
    "abi": frozenset({"leaf"}),
    "config": frozenset({"abi", "leaf"}),
    "store": frozenset({"leaf"}),
    "handlers": frozenset({"store", "config", "leaf"}),
    "sources": frozenset({"abi", "leaf"}),
    "persist": frozenset({"store", "leaf"}),
    "runtime": frozenset({"sources", "store", "persist", "handlers", "config", "abi", "leaf"}),
    "api": frozenset({"persist", "store", "leaf"}),
    "cli": frozenset({"runtime", "api", "config", "abi", "leaf"}),
    "testing": frozenset(
        {"runtime", "sources", "store", "persist", "handlers", "config", "abi", "leaf"}
    ),
    "root": frozenset({"runtime", "store", "handlers", "config", "leaf"}),
    "main": frozenset({"cli"}),
}


@dataclass(frozen=True)
class Import:
    """One imported module (and the names taken from it) at one line of one file."""

    file: str  # relative to src/, e.g. "indexer/runtime/_feed.py"
    line: int
    importer: str  # the importing module, e.g. "indexer.runtime._feed"
    target: str  # the imported module, e.g. "indexer.sources" or "trio"
    names: tuple[str, ...]  # for `from target import a, b`; () for `import target`

    def __str__(self) -> str:
        what = f"from {self.target} import {', '.join(self.names)}" if self.names else self.target
        return f"{self.file}:{self.line}: {what}"


def component(module: str) -> str:
    """The layer a module belongs to: its subpackage, "leaf", "root", "main" or "external"."""
    parts = module.split(".")
    if parts[0] != "indexer":
        return "external"
    if len(parts) == 1:
        return "root"
    if parts[1] in LEAVES:
        return "leaf"
    if parts[1] == "__main__":
        return "main"
    return parts[1]


def is_private(module: str) -> bool:
    """Whether a module path goes through a private (``_x``) module or package."""
    return any(p.startswith("_") and not p.startswith("__") for p in module.split("."))


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_imports(src: Path) -> list[Import]:
    """Every import of every module under ``src/indexer``, relative imports resolved."""
    found: list[Import] = []
    for path in sorted((src / "indexer").rglob("*.py")):
        importer = _module_name(path, src)
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        file = path.relative_to(src).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.extend(Import(file, node.lineno, importer, a.name, ()) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                names = tuple(a.name for a in node.names)
                # `from . import x` may import a module x rather than a name.
                modules = [n for n in names if _is_module(src, f"{target}.{n}")]
                found.extend(
                    Import(file, node.lineno, importer, f"{target}.{n}", ()) for n in modules
                )
                rest = tuple(n for n in names if n not in modules)
                if rest or not names:
                    found.append(Import(file, node.lineno, importer, target, rest))
    return found


def _is_module(src: Path, module: str) -> bool:
    path = src.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _top(module: str) -> str:
    return module.split(".")[0]


# --------------------------------------------------------------------------
# The rules: each returns the offending imports, with the reason
# --------------------------------------------------------------------------


def follows_the_diagram(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        mine, theirs = component(imp.importer), component(imp.target)
        if theirs not in ("external", mine) and theirs not in ALLOWED[mine]:
            bad.append(f"{imp}: {mine} may import only {sorted(ALLOWED[mine])}, not {theirs}")
    return bad


def store_never_imports_io(imports: list[Import]) -> list[str]:
    io = {"trio", "psycopg", "httpx", "h11", "pyarrow"}
    layers = {"persist", "runtime", "sources"}
    return [
        f"{imp}: the store is pure (no trio, psycopg, httpx, persist, runtime or sources)"
        for imp in imports
        if component(imp.importer) == "store"
        and (_top(imp.target) in io or component(imp.target) in layers)
    ]


def sources_and_persist_never_import_runtime(imports: list[Import]) -> list[str]:
    return [
        f"{imp}: {component(imp.importer)} never imports runtime"
        for imp in imports
        if component(imp.importer) in ("sources", "persist") and component(imp.target) == "runtime"
    ]


def persist_never_imports_config(imports: list[Import]) -> list[str]:
    return [
        f"{imp}: persist never imports config (the runtime passes what it needs)"
        for imp in imports
        if component(imp.importer) == "persist" and component(imp.target) == "config"
    ]


def handlers_never_import_runtime(imports: list[Import]) -> list[str]:
    return [
        f"{imp}: handlers never import runtime (Context is a Protocol in handlers/_context.py)"
        for imp in imports
        if component(imp.importer) == "handlers" and component(imp.target) == "runtime"
    ]


def cli_imports_only_runtime_config_and_leaves(imports: list[Import]) -> list[str]:
    # abi: `indexer init` reads ABI files, `indexer codegen` maps ABI types to Python.
    allowed = {"cli", "runtime", "api", "config", "abi", "leaf", "external"}
    return [
        f"{imp}: cli imports only runtime, api, config, abi and the leaf modules"
        for imp in imports
        if component(imp.importer) == "cli"
        and (component(imp.target) not in allowed or _top(imp.target) == "psycopg")
    ]


def only_persist_talks_to_postgresql(imports: list[Import]) -> list[str]:
    # The API is the one other client: read-only connections of its own.
    return [
        f"{imp}: only persist (and the read-only api) imports psycopg"
        for imp in imports
        if _top(imp.target) == "psycopg" and component(imp.importer) not in ("persist", "api")
    ]


def no_private_module_of_another_package(imports: list[Import]) -> list[str]:
    return [
        f"{imp}: {imp.target} is private to {component(imp.target)}; import its package instead"
        for imp in imports
        if component(imp.target) not in ("external", "leaf", component(imp.importer))
        and is_private(imp.target)
    ]


def no_private_name_of_another_package(imports: list[Import]) -> list[str]:
    return [
        f"{imp}: {name} is private to {component(imp.target)}"
        for imp in imports
        if component(imp.target) not in ("external", component(imp.importer))
        for name in imp.names
        if name.startswith("_")
    ]


def only_public_faces_from_testing(imports: list[Import]) -> list[str]:
    return [
        f"{imp}: testing imports other packages only through their __init__"
        for imp in imports
        if component(imp.importer) == "testing"
        and component(imp.target) not in ("external", "leaf", "testing")
        and imp.target != f"indexer.{component(imp.target)}"
    ]


Rule = Callable[[list[Import]], list[str]]

RULES: list[Rule] = [
    follows_the_diagram,
    store_never_imports_io,
    sources_and_persist_never_import_runtime,
    persist_never_imports_config,
    handlers_never_import_runtime,
    cli_imports_only_runtime_config_and_leaves,
    only_persist_talks_to_postgresql,
    no_private_module_of_another_package,
    no_private_name_of_another_package,
    only_public_faces_from_testing,
]


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return read_imports(SRC)


def check(rule: Rule, imports: list[Import]) -> None:
    bad = rule(imports)
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------


def test_the_reader_sees_every_package(imports: list[Import]) -> None:
    """Guards the checks below against reading nothing (they would all pass)."""
    seen = {component(i.importer) for i in imports}
    assert seen >= set(ALLOWED) - {"leaf"}
    targets = {i.target for i in imports}
    assert {"indexer.store", "indexer.persist", "trio", "psycopg"} <= targets


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_every_import_follows_the_layer_diagram(imports: list[Import], layer: str) -> None:
    check(follows_the_diagram, [i for i in imports if component(i.importer) == layer])


def test_store_never_imports_io_layers(imports: list[Import]) -> None:
    check(store_never_imports_io, imports)


def test_sources_and_persist_never_import_runtime(imports: list[Import]) -> None:
    check(sources_and_persist_never_import_runtime, imports)


def test_persist_never_imports_config(imports: list[Import]) -> None:
    check(persist_never_imports_config, imports)


def test_handlers_never_import_runtime(imports: list[Import]) -> None:
    check(handlers_never_import_runtime, imports)


def test_cli_imports_only_runtime_config_and_leaves(imports: list[Import]) -> None:
    check(cli_imports_only_runtime_config_and_leaves, imports)


def test_only_persist_talks_to_postgresql(imports: list[Import]) -> None:
    check(only_persist_talks_to_postgresql, imports)


def test_no_module_imports_a_private_module_of_another_package(imports: list[Import]) -> None:
    check(no_private_module_of_another_package, imports)


def test_no_module_imports_a_private_name_of_another_package(imports: list[Import]) -> None:
    check(no_private_name_of_another_package, imports)


def test_testing_imports_public_faces_only(imports: list[Import]) -> None:
    check(only_public_faces_from_testing, imports)


def test_leaves_import_nothing_of_indexer(imports: list[Import]) -> None:
    check(follows_the_diagram, [i for i in imports if component(i.importer) == "leaf"])
    for leaf in LEAVES:
        assert (SRC / "indexer" / f"{leaf}.py").is_file(), leaf


def test_planted_violations_are_reported(tmp_path: Path) -> None:
    """Each rule fails on a tree that breaks it: a copy of the rule, not a check that cannot fail."""
    planted = {
        "indexer/persist/_bad.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from ..runtime import Processor\n"  # upwards, type-only
            "def f():\n"
            "    from ..config import load_config\n"  # persist -> config, inside a function
        ),
        "indexer/store/_bad.py": "import trio\nfrom ..sources import RawLog\n",
        "indexer/handlers/_bad.py": "from ..runtime._context import StoreContext\n",
        "indexer/cli/_bad.py": "import psycopg\nfrom ..persist import connect\n",
        "indexer/testing/_bad.py": "from ..persist._connection import _columns\n",
        "indexer/sources/_bad.py": "from .. import runtime\n",
        "indexer/abi/_bad.py": "from ..config import load_config\n",
    }
    for name, text in planted.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "indexer" / "runtime").mkdir()
    (tmp_path / "indexer" / "runtime" / "__init__.py").write_text("")
    imports = read_imports(tmp_path)
    reported = {rule.__name__: rule(imports) for rule in RULES}
    assert all(reported.values()), [name for name, bad in reported.items() if not bad]
    assert reported["persist_never_imports_config"] == [
        "indexer/persist/_bad.py:5: from indexer.config import load_config: "
        "persist never imports config (the runtime passes what it needs)"
    ]
    assert any(
        "indexer/sources/_bad.py:1: indexer.runtime" in b for b in reported["follows_the_diagram"]
    )
