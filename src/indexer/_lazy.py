"""Packages whose names load on first use (``indexer``, ``indexer.api``, ``indexer.sources``).

A spawned child (the file reader, the JSON-RPC log worker) imports its own
module and, before it, every package above it; and ``indexer run`` without
``--serve`` needs no HTTP server.  Those packages import their submodules
only when a name is first asked for (docs/design.md, module map).  mypy
still sees ordinary imports, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["lazy_names"]


def lazy_names(
    package: str, modules: Mapping[str, str], names: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``.

    ``modules`` maps each lazy name to its submodule (relative, ``"._run"``);
    ``names`` is the package's ``__all__``.  A name is imported on first use
    and then stored in the package, so later lookups skip ``__getattr__``.
    """

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
