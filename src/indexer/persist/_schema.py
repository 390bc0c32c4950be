"""DDL: the project schema, entity tables and the framework tables.

Framework tables share the project schema and carry the reserved prefix
``_indexer_`` (entity table names come from class names, which cannot start
with an underscore after snake-casing a public class... and if one does,
:func:`check_table_names` refuses it).  Every identifier goes through
``psycopg.sql.Identifier``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .._errors import AlreadyRunningError, ConfigError, SchemaMismatchError

log = logging.getLogger("indexer.persist")

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..store import EntitySpec

__all__ = [
    "FRAMEWORK_PREFIX",
    "RAW_EVENTS",
    "RAW_EVENT_COLUMNS",
    "ChainRow",
    "check_table_names",
    "create_schema",
    "drop_schema",
    "fingerprint",
    "history_table",
    "lock_schema_for_run",
    "read_chain_rows",
    "read_hashes",
    "read_state",
]

FRAMEWORK_PREFIX = "_indexer_"
# Bumped when the framework tables change shape.
_LAYOUT_VERSION = 2


def history_table(spec: EntitySpec) -> str:
    """Name of the reorg history table of ``spec`` (at most 63 bytes, unique per entity table)."""
    name = f"{FRAMEWORK_PREFIX}h_{spec.table}"
    if len(name.encode()) <= 63:
        return name
    # Truncation alone could map two long names to one table.
    digest = hashlib.sha1(spec.table.encode()).hexdigest()[:8]
    return f"{name.encode()[:54].decode(errors='ignore')}_{digest}"


def check_table_names(specs: Sequence[EntitySpec]) -> None:
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.table.startswith(FRAMEWORK_PREFIX) or len(spec.table.encode()) > 63:
            raise ConfigError(
                f"entity {spec.cls.__name__}: table name {spec.table!r} is reserved or longer than 63 bytes; "
                f"set __table__ on the class."
            )
        if spec.table in seen:
            raise ConfigError(
                f"entities {seen[spec.table]} and {spec.cls.__name__} both map to table {spec.table!r}; set __table__."
            )
        seen[spec.table] = spec.cls.__name__


def fingerprint(specs: Sequence[EntitySpec]) -> list[Any]:
    return sorted(s.fingerprint() for s in specs)


def _ident(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def create_schema(
    conn: psycopg.Connection[Any], schema: str, specs: Sequence[EntitySpec], chains: dict[int, int]
) -> None:
    """Create the schema and tables if absent, or check they match the project.

    Args:
        chains: chain id -> configured start block, stored so that a changed
            start block is caught instead of silently mixing two histories.

    Raises:
        SchemaMismatchError: the schema was built for other entities or chains.
    """
    check_table_names(specs)
    fp = fingerprint(specs)
    with conn.transaction():
        # Serialise concurrent first runs on the same database.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (schema,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        state = _ident(schema, FRAMEWORK_PREFIX + "state")
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id int PRIMARY KEY CHECK (id = 1), layout int NOT NULL,"
                " entities jsonb NOT NULL, checkpoint bigint NOT NULL)"
            ).format(state)
        )
        row = conn.execute(sql.SQL("SELECT layout, entities FROM {}").format(state)).fetchone()
        if row is not None:
            layout, stored = row
            if layout != _LAYOUT_VERSION or stored != json.loads(json.dumps(fp)):
                raise SchemaMismatchError(
                    f"schema {schema!r} was created for different entity definitions than the handlers module "
                    f"declares now (stored: {_describe(stored)}; now: {_describe(fp)}). "
                    f"Run `indexer run --reset` to drop the schema and index from the start, or set a new `schema:` "
                    f"in indexer.yaml to keep the old data beside the new."
                )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (chain_id bigint PRIMARY KEY, start_block bigint NOT NULL,"
                " progress_block bigint NOT NULL, events_processed bigint NOT NULL, head_block bigint)"
            ).format(_ident(schema, FRAMEWORK_PREFIX + "chains"))
        )
        # Added after layout 2 shipped: older schemas gain it in place.  Only
        # then: ALTER TABLE takes an ACCESS EXCLUSIVE lock even when the
        # column exists, and held to the end of this transaction it blocked
        # every reader of the table (the HTTP API's /status; the simulation
        # caught its checker waiting on it while the run waited on it).
        chains_table = _ident(schema, FRAMEWORK_PREFIX + "chains")
        has_head = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s)"
            " AND attname = 'head_block' AND NOT attisdropped)",
            (chains_table.as_string(conn),),
        ).fetchone()
        if not (has_head and has_head[0]):
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS head_block bigint").format(
                    chains_table
                )
            )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id bigint PRIMARY KEY, chain_id bigint NOT NULL,"
                " block_number bigint NOT NULL, block_hash text, events int NOT NULL)"
            ).format(_ident(schema, FRAMEWORK_PREFIX + "checkpoints"))
        )
        # Rollback looks up "first checkpoint of chain X above block B".
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (chain_id, block_number)").format(
                sql.Identifier(FRAMEWORK_PREFIX + "checkpoints_block_idx"),
                _ident(schema, FRAMEWORK_PREFIX + "checkpoints"),
            )
        )
        for spec in specs:
            _create_entity_table(conn, schema, spec)
            _create_history_table(conn, schema, spec)
        _create_raw_events_table(conn, schema)
        from ._children import create_children_table

        create_children_table(conn, schema)
        if row is None:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (id, layout, entities, checkpoint) VALUES (1, %s, %s, 0)"
                ).format(state),
                (_LAYOUT_VERSION, json.dumps(fp)),
            )
        chains_t = _ident(schema, FRAMEWORK_PREFIX + "chains")
        for chain_id, start in chains.items():
            got = conn.execute(
                sql.SQL("SELECT start_block FROM {} WHERE chain_id = %s").format(chains_t),
                (chain_id,),
            ).fetchone()
            if got is not None and got[0] != start:
                raise SchemaMismatchError(
                    f"schema {schema!r} holds chain {chain_id} indexed from block {got[0]}, but indexer.yaml now says "
                    f"start_block {start}. Run `indexer run --reset` to index again from the new start block."
                )


def _describe(fp: Any) -> str:
    try:
        return "; ".join(f"{t}({', '.join(c[0] + ' ' + c[1] for c in cols)})" for t, cols in fp)
    except (TypeError, ValueError, IndexError):
        return repr(fp)


def _create_entity_table(conn: psycopg.Connection[Any], schema: str, spec: EntitySpec) -> None:
    cols = []
    for f in spec.fields:
        col = sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(f.pg_type))
        if f.name == "id":
            col = sql.SQL("{} PRIMARY KEY").format(col)
        elif not f.nullable:
            col = sql.SQL("{} NOT NULL").format(col)
        cols.append(col)
    table = _ident(schema, spec.table)
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(table, sql.SQL(", ").join(cols))
    )
    for f in spec.indexed:
        # Index names are per schema; derive a short, stable, quoted name.
        name = f"{spec.table}_{f.name}_idx"[:63]
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(name), table, sql.Identifier(f.name)
            )
        )
    _sync_declared_indexes(conn, schema, spec)


# Marks the indexes that ``__indexes__`` declared, so that the ones no longer
# declared can be told from any index a user made by hand.
_DECLARED = "indexer: declared in __indexes__"


def _declared_name(table: str, cols: tuple[str, ...]) -> str:
    name = f"{table}_by_{'_'.join(cols)}"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha256("\0".join((table, *cols)).encode()).hexdigest()[:10]
    return name.encode()[:52].decode(errors="ignore") + "_" + digest


def _sync_declared_indexes(conn: psycopg.Connection[Any], schema: str, spec: EntitySpec) -> None:
    """Create the indexes of ``__indexes__`` that are missing; drop those no longer declared.

    Not part of the schema fingerprint: an index changes no data, so adding
    or removing one needs no new run, only this step at the next start
    (building an index over a large table takes a while, and is logged).
    """
    table = _ident(schema, spec.table)
    wanted = {_declared_name(spec.table, cols): cols for cols in spec.indexes}
    present = {
        name
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
            " WHERE x.indrelid = to_regclass(%s) AND obj_description(c.oid, 'pg_class') = %s",
            (table.as_string(conn), _DECLARED),
        ).fetchall()
    }
    for name in sorted(present - wanted.keys()):
        log.info("dropping index %s on %s: no longer in __indexes__", name, spec.table)
        conn.execute(sql.SQL("DROP INDEX {}").format(_ident(schema, name)))
    missing = [(name, cols) for name, cols in wanted.items() if name not in present]
    filled = bool(missing) and conn.execute(
        sql.SQL("SELECT EXISTS (SELECT FROM {})").format(table)
    ).fetchone() == (True,)
    for name, cols in missing:
        # Worth a line only where building it takes a while: over existing rows.
        log.log(
            logging.INFO if filled else logging.DEBUG,
            "creating index %s on %s (%s)",
            name,
            spec.table,
            ", ".join(cols),
        )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(name), table, sql.SQL(", ").join(map(sql.Identifier, cols))
            )
        )
        conn.execute(
            sql.SQL("COMMENT ON INDEX {} IS {}").format(
                _ident(schema, name), sql.Literal(_DECLARED)
            )
        )


def _create_history_table(conn: psycopg.Connection[Any], schema: str, spec: EntitySpec) -> None:
    """Before-images for reorg rollback: the row as it was *before* the change at ``_checkpoint``.

    ``_present`` false means the id did not exist before that change (the
    data columns are then NULL).  Data columns are nullable and unindexed:
    the table is written only near the chain head and read only by rollback.
    """
    cols: list[sql.Composable] = [
        sql.SQL("_checkpoint bigint NOT NULL"),
        sql.SQL("_present boolean NOT NULL"),
    ]
    cols.extend(
        sql.SQL("{} {}{}").format(
            sql.Identifier(f.name),
            sql.SQL(f.pg_type),
            sql.SQL(" NOT NULL" if f.name == "id" else ""),
        )
        for f in spec.fields
    )
    cols.append(sql.SQL("PRIMARY KEY (id, _checkpoint)"))
    name = history_table(spec)
    table = _ident(schema, name)
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(table, sql.SQL(", ").join(cols))
    )
    # Rollback and pruning select by checkpoint range.
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (_checkpoint)").format(
            sql.Identifier(f"{name[:55]}_cp_idx"), table
        )
    )


RAW_EVENTS = FRAMEWORK_PREFIX + "raw_events"
RAW_EVENT_COLUMNS = (
    "chain_id",
    "block_number",
    "log_index",
    "transaction_hash",
    "block_hash",
    "block_timestamp",
    "address",
    "topics",
    "data",
    "event",
    "params",
    "checkpoint",
)


def _create_raw_events_table(conn: psycopg.Connection[Any], schema: str) -> None:
    """Every processed log when ``raw_events: true`` (created always: it costs nothing empty)."""
    table = _ident(schema, RAW_EVENTS)
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (chain_id bigint NOT NULL, block_number bigint NOT NULL,"
            " log_index int NOT NULL, transaction_hash text NOT NULL, block_hash text,"
            " block_timestamp bigint, address text NOT NULL, topics text[] NOT NULL, data text NOT NULL,"
            " event text NOT NULL, params jsonb NOT NULL, checkpoint bigint NOT NULL,"
            " PRIMARY KEY (chain_id, block_number, log_index))"
        ).format(table)
    )
    # Rollback deletes by checkpoint.
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (checkpoint)").format(
            sql.Identifier(RAW_EVENTS + "_cp_idx"), table
        )
    )


def drop_schema(conn: psycopg.Connection[Any], schema: str, *, keep_caches: bool = False) -> None:
    """Drop ``schema``; with ``keep_caches``, every table in it but the effect caches.

    ``indexer dev`` re-indexes from the start on each reload and keeps the
    cached effect outputs (``_indexer_effect_*``), which do not depend on the
    handlers' code.
    """
    with conn.transaction():
        if not keep_caches:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            return
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename NOT LIKE %s",
            (schema, FRAMEWORK_PREFIX.replace("_", "\\_") + "effect\\_%"),
        ).fetchall()
        for (table,) in rows:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(_ident(schema, table)))


def read_state(
    conn: psycopg.Connection[Any], schema: str
) -> tuple[int, dict[int, tuple[int, int]]]:
    """Committed checkpoint and, per chain, (progress block, events processed)."""
    cp_row = conn.execute(
        sql.SQL("SELECT checkpoint FROM {}").format(_ident(schema, FRAMEWORK_PREFIX + "state"))
    ).fetchone()
    checkpoint = int(cp_row[0]) if cp_row else 0
    rows = conn.execute(
        sql.SQL("SELECT chain_id, progress_block, events_processed FROM {}").format(
            _ident(schema, FRAMEWORK_PREFIX + "chains")
        )
    ).fetchall()
    return checkpoint, {int(c): (int(b), int(e)) for c, b, e in rows}


@dataclass(frozen=True, slots=True)
class ChainRow:
    """A chain's committed state as readers (the HTTP API) see it."""

    chain_id: int
    start_block: int
    block: int  # committed through
    events: int
    head_block: int | None  # the head the source reported at that commit


def read_chain_rows(conn: psycopg.Connection[Any], schema: str) -> dict[int, ChainRow] | None:
    """Every chain's committed state, or None if the schema has no framework tables yet.

    Checks for the table first instead of catching the error: a failed
    statement would abort the caller's transaction.
    """
    table = _ident(schema, FRAMEWORK_PREFIX + "chains")
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table.as_string(conn),)).fetchone()
    if not exists or not exists[0]:
        return None
    rows = conn.execute(
        sql.SQL(
            "SELECT chain_id, start_block, progress_block, events_processed, head_block FROM {}"
        ).format(table)
    ).fetchall()
    return {
        int(c): ChainRow(int(c), int(s), int(b), int(e), None if h is None else int(h))
        for c, s, b, e, h in rows
    }


def read_hashes(
    conn: psycopg.Connection[Any], schema: str, chain_id: int, above: int
) -> dict[int, str]:
    """Stored block hashes of ``chain_id`` for blocks above ``above`` (reorg detection on resume)."""
    rows = conn.execute(
        sql.SQL(
            "SELECT block_number, block_hash FROM {} WHERE chain_id = %s AND block_number > %s"
            " AND block_hash IS NOT NULL"
        ).format(_ident(schema, FRAMEWORK_PREFIX + "checkpoints")),
        (chain_id, above),
    ).fetchall()
    return {int(b): str(h) for b, h in rows}


def table_ident(schema: str, name: str) -> sql.Composed:
    """Schema-qualified identifier (shared with the write and load paths)."""
    return _ident(schema, name)


# The class id of the run lock's two-key advisory lock ("IX"); the second key
# is the schema's hash.  create_schema's one-key transaction lock is a
# different lock space, so the two never collide.
_RUN_LOCK_CLASS = 0x4958


def lock_schema_for_run(conn: psycopg.Connection[Any], schema: str) -> None:
    """Take the session-level lock that lets one run at a time index ``schema``.

    Held until ``conn`` closes (also when the process dies: PostgreSQL drops
    a dead session's locks), so a second run on the same schema fails at
    once instead of interleaving its writes with the first one's.

    Raises:
        AlreadyRunningError: another session holds it.
    """
    row = conn.execute(
        "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_RUN_LOCK_CLASS, schema)
    ).fetchone()
    if row and row[0]:
        return
    holder = conn.execute(
        "SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = hashtext(%s)::oid"
        " AND l.objsubid = 2 AND l.granted",
        (_RUN_LOCK_CLASS, schema),
    ).fetchone()
    who = ""
    if holder is not None:
        pid, app, addr, since = holder
        where = f" from {addr}" if addr else ""
        who = f" (PostgreSQL backend {pid}, {app or 'no application name'}{where}, since {since:%Y-%m-%d %H:%M:%S %Z})"
    raise AlreadyRunningError(
        f"another `indexer run` is already indexing schema {schema!r} in this database{who}. "
        f"Two runs on one schema would interleave their writes: stop the other one first, or give "
        f"this project its own `schema:` in indexer.yaml."
    )
