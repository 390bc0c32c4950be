"""Entity declarations: user classes become immutable, typed tuples.

An entity class is a ``tuple`` subclass built by :class:`_EntityMeta`.  A
tuple is the cheapest immutable object CPython can build (one allocation, no
``__dict__``), its fields are read through C-level getters, and it is already
the row shape that COPY and the loaders want.  Immutability is how the store
guarantees that mutating an object a handler got changes nothing stored: the
only way to change state is ``ctx.set`` with a new object (``replace`` makes
one).

Entities are valid by construction: the generated constructor checks every
field against its declared type, and ``replace`` checks the fields it
changes, raising :class:`~indexer.EntityError` at the line that built the
bad value.  So ``ctx.set`` has nothing left to check, and an unchanged field
is never checked twice (rows loaded from the database are built without
checks: PostgreSQL has already held them to the column types).
"""

from __future__ import annotations

import re
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Self, dataclass_transform

from .._errors import ConfigError, EntityError

try:  # CPython's namedtuple field getter: a C descriptor, faster than property(itemgetter).
    from collections import _tuplegetter  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - other interpreters
    from operator import itemgetter as _itemgetter

    def _tuplegetter(index: int, doc: str) -> Any:
        return property(_itemgetter(index), doc=doc)


__all__ = ["Entity", "EntitySpec", "FieldSpec", "Index", "entity_spec"]

# numeric(78,0) holds every uint256 and int256 and nothing wider.
_NUMERIC_LIMIT = 10**78
_PG_TYPES: dict[type, str] = {
    int: "numeric(78,0)",
    str: "text",
    bool: "boolean",
    bytes: "bytea",
    float: "double precision",
}
_RESERVED = frozenset({"replace"})
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Index:
    """A B-tree index: on one field (``Annotated[T, Index]``) or over several (``__indexes__``).

    ``Annotated[str, Index]`` indexes that field and lets handlers query it
    with ``ctx.find``.  ``__indexes__ = (Index("token", "balance"),)`` on an
    entity class declares an index over those columns, in that order, with
    ``id`` appended (the tie-break of every API order): a filter on the
    leading columns ordered by the next one reads its page straight from the
    index.  Declared indexes serve readers (the HTTP API, SQL); they are
    created, and dropped once no longer declared, when a run starts.
    """

    __module__ = "indexer"
    __slots__ = ("fields",)

    def __init__(self, *fields: str) -> None:
        self.fields = fields

    def __repr__(self) -> str:
        return f"Index({', '.join(map(repr, self.fields))})"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One entity field as the store and the database see it."""

    name: str
    position: int
    py_type: type
    nullable: bool
    indexed: bool
    has_default: bool
    default: Any

    @property
    def pg_type(self) -> str:
        return _PG_TYPES[self.py_type]


@dataclass(frozen=True)
class EntitySpec:
    """What the framework knows about one entity class."""

    cls: type[Entity]
    table: str
    fields: tuple[FieldSpec, ...]
    #: ``__indexes__``: each index's columns, ``id`` last.
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def indexed(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.indexed)

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def fingerprint(self) -> list[Any]:
        """A JSON-able description used to detect schema changes between runs."""
        return [self.table, [[f.name, f.pg_type, f.nullable, f.indexed] for f in self.fields]]


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _unwrap(hint: Any, where: str) -> tuple[type, bool, bool]:
    """Return (python type, nullable, indexed) for one annotation."""
    indexed = False
    if typing.get_origin(hint) is typing.Annotated:
        base, *extras = typing.get_args(hint)
        indexed = any(e is Index or isinstance(e, Index) for e in extras)
        if any(isinstance(e, Index) and e.fields for e in extras):
            raise ConfigError(
                f"{where}: inside Annotated, write `Index` without field names; an index over "
                f"several fields goes in the class's `__indexes__`."
            )
        hint = base
    nullable = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(hint)) != 2:
            raise ConfigError(f"{where}: only `T | None` unions are supported, got {hint!r}.")
        nullable, hint = True, args[0]
    if hint not in _PG_TYPES:
        allowed = ", ".join(t.__name__ for t in _PG_TYPES)
        raise ConfigError(
            f"{where}: unsupported field type {hint!r}; use one of {allowed} (optionally `| None`)."
        )
    return hint, nullable, indexed


@dataclass_transform(frozen_default=True, kw_only_default=False)
class _EntityMeta(type):
    def __new__(
        mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any
    ) -> _EntityMeta:
        if not any(isinstance(b, _EntityMeta) for b in bases):
            return super().__new__(mcs, name, bases, ns, **kw)
        if any(getattr(b, "__indexer_spec__", None) is not None for b in bases):
            raise ConfigError(f"entity {name}: subclassing another entity is not supported.")
        annotations = ns.get("__annotations__", {})
        defaults = {k: ns.pop(k) for k in list(annotations) if k in ns}
        ns["__slots__"] = ()
        cls = super().__new__(mcs, name, bases, ns, **kw)
        try:
            # Only the class's own annotations, evaluated in its module: the
            # base classes' annotations are not fields.
            # A class (not a plain namespace): typing accepts ClassVar only there.
            holder = type("_Fields", (), {"__annotations__": annotations})
            module = sys.modules.get(cls.__module__)
            # A module executed without being registered in sys.modules: the
            # class statement's own globals are the module's.
            globalns = vars(module) if module else sys._getframe(1).f_globals
            hints = typing.get_type_hints(holder, globalns=globalns, include_extras=True)
        except Exception as exc:
            raise ConfigError(
                f"entity {name} ({cls.__module__}): cannot resolve its field annotations: {exc}"
            ) from exc
        for k in list(defaults):
            if typing.get_origin(hints.get(k)) is ClassVar:
                setattr(cls, k, defaults.pop(k))  # a class attribute, not a field's default
        fields: list[FieldSpec] = []
        for pos, fname in enumerate(
            k for k in annotations if k in hints and typing.get_origin(hints[k]) is not ClassVar
        ):
            where = f"entity {name}, field {fname!r}"
            if (
                not _NAME_RE.match(fname)
                or fname.startswith("_")
                or fname in _RESERVED
                or len(fname.encode()) > 63
            ):
                raise ConfigError(
                    f"{where}: field names must be identifiers without a leading underscore, at most 63 bytes, and not one of {sorted(_RESERVED)}."
                )
            py_type, nullable, indexed = _unwrap(hints[fname], where)
            has_default = fname in defaults
            fields.append(
                FieldSpec(fname, pos, py_type, nullable, indexed, has_default, defaults.get(fname))
            )
        id_field = next((f for f in fields if f.name == "id"), None)
        if id_field is None or id_field.py_type is not str or id_field.nullable:
            raise ConfigError(
                f"entity {name} ({cls.__module__}): every entity needs an `id: str` field (its primary key)."
            )
        seen_default = False
        for f in fields:
            if f.has_default:
                seen_default = True
            elif seen_default:
                raise ConfigError(
                    f"entity {name}: field {f.name!r} without a default follows a field with one."
                )
        table = getattr(cls, "__table__", None) or _snake_case(name)
        declared = getattr(cls, "__indexes__", ())
        indexes = _declared_indexes(name, declared, fields)
        spec = EntitySpec(typing.cast("type[Entity]", cls), table, tuple(fields), indexes)
        cls.__indexer_spec__ = spec  # type: ignore[attr-defined]
        for f in fields:
            setattr(cls, f.name, _tuplegetter(f.position, f"{f.pg_type} field {f.name!r}"))
        cls.__new__ = _make_new(spec)  # type: ignore[method-assign]
        cls.replace = _make_replace(spec)  # type: ignore[attr-defined]
        cls.__indexer_check__ = staticmethod(_make_check(spec))  # type: ignore[attr-defined]
        setattr(cls, "__match_args__", tuple(f.name for f in fields))  # noqa: B010
        return cls


def _declared_indexes(
    entity: str, declared: Any, fields: list[FieldSpec]
) -> tuple[tuple[str, ...], ...]:
    """``__indexes__`` checked: each index's columns with ``id`` appended."""
    where = f"entity {entity}, __indexes__"
    if not isinstance(declared, tuple | list) or not all(
        isinstance(i, Index) and i.fields for i in declared
    ):
        raise ConfigError(
            f'{where}: expected a tuple of `Index("field", ...)`, e.g. '
            f'`__indexes__ = (Index("token", "balance"),)`; got {declared!r}.'
        )
    names = [f.name for f in fields]
    out: list[tuple[str, ...]] = []
    for index in declared:
        for col in index.fields:
            if col not in names:
                raise ConfigError(
                    f"{where}: {index!r} names {col!r}, which is not a field; fields: "
                    f"{', '.join(names)}."
                )
        if len(set(index.fields)) != len(index.fields):
            raise ConfigError(f"{where}: {index!r} names a field twice.")
        cols = index.fields if "id" in index.fields else (*index.fields, "id")
        if cols in out:
            raise ConfigError(f"{where}: {index!r} is declared twice.")
        out.append(cols)
    return tuple(out)


def _condition(f: FieldSpec, v: str) -> str:
    """Python source that is true when the value named ``v`` fits field ``f``."""
    cond = {
        # _NLIM, not -_LIM: a unary minus would build a new 78-digit int per check.
        int: f"(type({v}) is int and _NLIM < {v} < _LIM)",
        str: f"(type({v}) is str and '\\x00' not in {v})",
        bool: f"type({v}) is bool",
        bytes: f"type({v}) is bytes",
        float: f"(type({v}) is float or type({v}) is int)",
    }[f.py_type]
    return f"({v} is None or {cond})" if f.nullable else cond


def _invalid(cls: type[Entity], values: tuple[Any, ...]) -> EntityError:
    """The error for a constructor or ``replace`` call that got a bad value."""
    entity = tuple.__new__(cls, values)
    bad = cls.__indexer_check__(entity)  # type: ignore[attr-defined]
    assert bad is not None
    return EntityError(describe_bad_field(entity, bad))


def _generate(spec: EntitySpec, src: str, env: dict[str, Any], name: str) -> Any:
    env.update(_tnew=tuple.__new__, _LIM=_NUMERIC_LIMIT, _NLIM=-_NUMERIC_LIMIT, _invalid=_invalid)
    exec(src, env)
    fn = env[name]
    fn.__qualname__ = f"{spec.cls.__qualname__}.{name}"
    return fn


def _make_new(spec: EntitySpec) -> Any:
    """A per-class constructor that checks every field, straight-line."""
    params = []
    env: dict[str, Any] = {}
    for f in spec.fields:
        if f.has_default:
            env[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
        else:
            params.append(f.name)
    names = ", ".join(f.name for f in spec.fields) + ","
    conds = " and ".join(_condition(f, f.name) for f in spec.fields)
    src = (
        f"def __new__(cls, {', '.join(params)}):\n"
        f"    if not ({conds}):\n"
        f"        raise _invalid(cls, ({names}))\n"
        f"    return _tnew(cls, ({names}))\n"
    )
    return _generate(spec, src, env, "__new__")


def _make_replace(spec: EntitySpec) -> Any:
    """A per-class ``replace`` with one keyword per field, checking only the changed ones."""
    params = ", ".join(f"{f.name}=_M" for f in spec.fields)
    names = ", ".join(f.name for f in spec.fields) + ","
    lines = [f"def replace(self, *, {params}):"]
    for f in spec.fields:
        lines.append(f"    if {f.name} is _M:")
        lines.append(f"        {f.name} = self[{f.position}]")
        lines.append(f"    elif not {_condition(f, f.name)}:")
        # Fields after this one may still be _M: take them from self.
        lines.append(f"        raise _invalid(type(self), _fill(self, ({names})))")
    lines.append(f"    return _tnew(type(self), ({names}))")
    fn = _generate(spec, "\n".join(lines) + "\n", {"_M": _UNSET, "_fill": _fill}, "replace")
    fn.__doc__ = Entity.replace.__doc__
    return fn


_UNSET: Any = object()


def _fill(entity: tuple[Any, ...], values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(old if new is _UNSET else new for old, new in zip(entity, values, strict=True))


def _make_check(spec: EntitySpec) -> Any:
    """Build a validator: returns None when the entity fits, else the bad field's name."""
    lines = ["def check(e):"]
    lines += [
        f"    if not {_condition(f, f'e[{f.position}]')}: return {f.name!r}" for f in spec.fields
    ]
    lines.append("    return None")
    return _generate(spec, "\n".join(lines) + "\n", {}, "check")


def describe_bad_field(entity: Entity, field_name: str) -> str:
    """Explain why one field of an entity failed validation."""
    spec = entity_spec(type(entity))
    f = spec.field(field_name)
    value = entity[f.position]
    want = f.py_type.__name__ + (" | None" if f.nullable else "")
    if f.py_type is int and type(value) is int:
        why = "it does not fit numeric(78,0) (at most 78 decimal digits)"
    elif f.py_type is str and type(value) is str:
        why = "it contains a NUL byte (\\x00), which PostgreSQL text cannot store; strip or escape it in the handler"
    else:
        why = f"expected {want}, got {type(value).__name__}"
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{spec.cls.__name__}(id={entity[spec.field('id').position]!r}).{field_name} = {shown}: {why}"


class Entity(tuple[Any, ...], metaclass=_EntityMeta):
    """Base class of user entities.

    Declare fields as annotations; ``id: str`` is required and is the primary
    key.  Field types: ``int`` (numeric(78,0)), ``str`` (text), ``bool``,
    ``bytes`` (bytea), ``float`` (double precision), each optionally
    ``| None``; wrap in ``Annotated[T, Index]`` to allow ``ctx.find`` on it.
    The table is the snake_case class name (override with ``__table__``).

    Instances are immutable; build a changed copy with :meth:`replace` and
    store it with ``ctx.set``.
    """

    __slots__ = ()
    __module__ = "indexer"
    __indexer_spec__: ClassVar[EntitySpec | None] = None

    def replace(self, **changes: Any) -> Self:
        """Return a copy with the given fields changed."""
        spec = entity_spec(type(self))
        values = list(self)
        for name, value in changes.items():
            try:
                values[spec.field(name).position] = value
            except KeyError:
                raise TypeError(f"{type(self).__name__} has no field {name!r}") from None
        return tuple.__new__(type(self), values)

    def __repr__(self) -> str:
        spec = type(self).__indexer_spec__
        if spec is None:
            return tuple.__repr__(self)
        inner = ", ".join(f"{f.name}={self[f.position]!r}" for f in spec.fields)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and tuple.__eq__(self, typing.cast(tuple[Any, ...], other))

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple.__hash__(self)))

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)


def entity_spec(cls: type[Entity]) -> EntitySpec:
    """Return the spec of an entity class (raises TypeError for non-entities)."""
    spec = getattr(cls, "__indexer_spec__", None)
    if spec is None:
        raise TypeError(f"{cls!r} is not an indexer Entity subclass")
    return typing.cast(EntitySpec, spec)


def check_entity(entity: Entity) -> None:
    """Raise EntityError if a field value does not fit its declared type."""
    bad = type(entity).__indexer_check__(entity)  # type: ignore[attr-defined]
    if bad is not None:
        raise EntityError(describe_bad_field(entity, bad))
