"""The in-memory entity store: pure, synchronous, no I/O.

INTERNAL: this package is the framework's own; its names may change in any
release.  Users declare entities with :class:`indexer.Entity` and
:data:`indexer.Index`, and reach the store only through ``ctx``.

It imports neither Trio, psycopg, httpx nor the persist, runtime or sources
packages (``tests/test_layers.py`` checks): the runtime owns and drives it,
the persistence layer reads its snapshots.
"""

from ._children import Children as Children
from ._children import ChildRow as ChildRow
from ._effect_cache import EffectCache as EffectCache
from ._entity import Entity as Entity
from ._entity import EntitySpec as EntitySpec
from ._entity import FieldSpec as FieldSpec
from ._entity import Index as Index
from ._entity import check_entity as check_entity
from ._entity import entity_spec as entity_spec
from ._store import Store as Store
from ._table import MISSING as MISSING
from ._table import EntityTable as EntityTable
from ._table import TableChanges as TableChanges

__all__ = [
    "MISSING",
    "ChildRow",
    "Children",
    "EffectCache",
    "Entity",
    "EntitySpec",
    "EntityTable",
    "FieldSpec",
    "Index",
    "Store",
    "TableChanges",
    "check_entity",
    "entity_spec",
]
