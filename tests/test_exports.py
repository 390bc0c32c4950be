"""What each package exports (``__all__``), and which packages are public.

The public API is ``indexer`` and ``indexer.testing``; every other
subpackage is internal and says so in its docstring.  Every module's
``__all__`` is sorted as ruff sorts it (RUF022), names only what exists,
and exports nothing private; a package's ``__all__`` is its whole face.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType
from typing import Any

import pytest

import indexer

PUBLIC = ("indexer", "indexer.testing")
INTERNAL = (
    "indexer.abi",
    "indexer.api",
    "indexer.cli",
    "indexer.config",
    "indexer.handlers",
    "indexer.persist",
    "indexer.runtime",
    "indexer.sources",
    "indexer.store",
)
PACKAGES = PUBLIC + INTERNAL
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(indexer.__path__, "indexer.")
    if not info.name.endswith("__main__")
)


def isort_key(name: str) -> tuple[int, list[Any]]:
    """RUF022's order: SCREAMING_CASE, then CamelCase, then the rest; numbers by value."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def names_of(module: ModuleType) -> list[str]:
    names = module.__all__
    assert isinstance(names, list), f"{module.__name__}.__all__ is not a list"
    return names


def test_every_package_is_listed() -> None:
    packages = {
        info.name for info in pkgutil.walk_packages(indexer.__path__, "indexer.") if info.ispkg
    }
    assert packages == set(PACKAGES) - {"indexer"}


@pytest.mark.parametrize("name", ["indexer", *MODULES])
def test_all_is_sorted_public_and_exists(name: str) -> None:
    module = importlib.import_module(name)
    names = names_of(module)
    assert names == sorted(names, key=isort_key), f"{name}.__all__ is not sorted"
    assert len(set(names)) == len(names), f"{name}.__all__ repeats a name"
    assert [n for n in names if n.startswith("_")] == [], f"{name} exports private names"
    missing = [n for n in names if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it lacks"


@pytest.mark.parametrize("name", PACKAGES)
def test_a_packages_all_is_its_whole_face(name: str) -> None:
    package = importlib.import_module(name)
    for n in names_of(package):  # a lazy package (indexer.api) loads a name on first use
        getattr(package, n)
    public = {
        n
        for n, value in vars(package).items()
        if not n.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public == set(names_of(package)), name
    # `from package import *` gives exactly that, and every name is importable that way.
    namespace: dict[str, Any] = {}
    exec(f"from {name} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(names_of(package))


@pytest.mark.parametrize("name", INTERNAL)
def test_internal_packages_say_so(name: str) -> None:
    doc = importlib.import_module(name).__doc__ or ""
    assert "INTERNAL" in doc, f"{name}'s docstring does not state that it is internal"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_packages_do_not_call_themselves_internal(name: str) -> None:
    assert "INTERNAL" not in (importlib.import_module(name).__doc__ or "")


def test_public_names_present_themselves_as_indexer() -> None:
    for name in ("Context", "Effect", "Entity", "Event", "Index", "IndexerError", "HandlerError"):
        assert getattr(indexer, name).__module__ == "indexer", name


def test_what_users_import_is_public() -> None:
    """The names the example, README and docs import come from indexer or indexer.testing."""
    import indexer.testing

    for name in ("Context", "Entity", "Event", "Index", "on", "effect", "Metrics", "RunOptions"):
        assert name in indexer.__all__, name
    for name in ("HandlerHarness", "ScriptedChain", "open_rpc_server", "start_embedded"):
        assert name in indexer.testing.__all__, name
