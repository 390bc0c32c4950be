r"""PostgreSQL persistence: DDL, loads, the write and rollback transactions, retries.

INTERNAL: this package is the framework's own; its names may change in any
release.  Users reach the database through :func:`indexer.run_project` and
:mod:`indexer.testing` (``start_embedded``, ``read_entities``).

Every psycopg call of the framework is here, and so is the classification
of database errors: loads raise :class:`~indexer.DatabaseError`, writes
:class:`~indexer.WriteError`, and :class:`RetryingSession` retries the
transient ones (``_retry.py``).  It never sees the store (the runtime hands
it :class:`Changeset`\ s) and never imports the runtime, the sources or the
configuration.
"""

from ._changeset import ChainProgress as ChainProgress
from ._changeset import Changeset as Changeset
from ._changeset import CheckpointRow as CheckpointRow
from ._changeset import commit_changeset as commit_changeset
from ._changeset import committed_checkpoint as committed_checkpoint
from ._children import read_children as read_children
from ._connection import Session as Session
from ._connection import connect as connect
from ._connection import entity_columns as entity_columns
from ._connection import load_all as load_all
from ._connection import load_by_field as load_by_field
from ._connection import load_by_ids as load_by_ids
from ._connection import numeric_as_int as numeric_as_int
from ._connection import table_has_rows as table_has_rows
from ._effects import count_effect_rows as count_effect_rows
from ._effects import create_effect_tables as create_effect_tables
from ._effects import effect_table as effect_table
from ._effects import load_effect_outputs as load_effect_outputs
from ._embedded import start_embedded as start_embedded
from ._notify import CHANNEL as CHANNEL
from ._notify import Notification as Notification
from ._notify import decode_notification as decode_notification
from ._report import open_report_query as open_report_query
from ._retry import DEFAULT_RETRY_SECONDS as DEFAULT_RETRY_SECONDS
from ._retry import RetryPolicy as RetryPolicy
from ._retry import is_transient as is_transient
from ._retrying import RetryingSession as RetryingSession
from ._retrying import open_session as open_session
from ._rollback import Rollback as Rollback
from ._rollback import execute_rollback as execute_rollback
from ._rollback import rollback_checkpoint as rollback_checkpoint
from ._schema import FRAMEWORK_PREFIX as FRAMEWORK_PREFIX
from ._schema import ChainRow as ChainRow
from ._schema import create_schema as create_schema
from ._schema import drop_schema as drop_schema
from ._schema import history_table as history_table
from ._schema import lock_schema_for_run as lock_schema_for_run
from ._schema import read_chain_rows as read_chain_rows
from ._schema import read_hashes as read_hashes
from ._schema import read_state as read_state
from ._schema import table_ident as table_ident

__all__ = [
    "CHANNEL",
    "DEFAULT_RETRY_SECONDS",
    "FRAMEWORK_PREFIX",
    "ChainProgress",
    "ChainRow",
    "Changeset",
    "CheckpointRow",
    "Notification",
    "RetryPolicy",
    "RetryingSession",
    "Rollback",
    "Session",
    "commit_changeset",
    "committed_checkpoint",
    "connect",
    "count_effect_rows",
    "create_effect_tables",
    "create_schema",
    "decode_notification",
    "drop_schema",
    "effect_table",
    "entity_columns",
    "execute_rollback",
    "history_table",
    "is_transient",
    "load_all",
    "load_by_field",
    "load_by_ids",
    "load_effect_outputs",
    "lock_schema_for_run",
    "numeric_as_int",
    "open_report_query",
    "open_session",
    "read_chain_rows",
    "read_children",
    "read_hashes",
    "read_state",
    "rollback_checkpoint",
    "start_embedded",
    "table_has_rows",
    "table_ident",
]
