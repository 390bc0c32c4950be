"""The text-only half of the SQL endpoint's guard: what a query may contain.

:func:`check_select` reads the SQL with :mod:`._sql_lexer` (which splits it
as PostgreSQL does, so strings and comments never hide code) and refuses
what :mod:`._sql`'s docstring lists: more than one statement, anything but a
query, write/DDL/command keywords, locking clauses, calls of functions with
side effects or that run SQL strings, and relations holding credentials.
It needs no database; :func:`._sql.run_select` runs it first, then relies on
PostgreSQL's own guards as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._sql_lexer import LexError, Token, tokenize

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "MAX_PARAMS",
    "MAX_SQL_LENGTH",
    "Checked",
    "SqlRefused",
    "check_params",
    "check_select",
    "check_sql",
]

MAX_SQL_LENGTH = 20_000
"""Longest SQL text accepted, in characters."""
MAX_PARAMS = 100
"""Most values ``params`` may hold."""

_STARTS = frozenset({"select", "with", "values", "table"})

_WRITE = "the SQL endpoint is read-only; data-modifying statements are refused"
_DDL = "schema and privilege changes are refused"
_COMMAND = "commands with side effects are refused"
_SESSION = "session settings and prepared statements are refused"
_FORBIDDEN_WORDS: dict[str, str] = {
    **dict.fromkeys(["insert", "update", "delete", "merge", "truncate"], _WRITE),
    **dict.fromkeys(["create", "alter", "drop", "grant", "revoke", "security", "refresh"], _DDL),
    **dict.fromkeys(
        [
            "copy",
            "call",
            "do",
            "lock",
            "vacuum",
            "analyze",
            "analyse",
            "listen",
            "unlisten",
            "notify",
        ],
        _COMMAND,
    ),
    **dict.fromkeys(["set", "reset", "discard", "prepare", "execute", "deallocate"], _SESSION),
    "into": "SELECT ... INTO creates a table; it is refused",
}
_LOCKING = (("update",), ("share",), ("no", "key", "update"), ("key", "share"))

# Why, and the names (a trailing * for a prefix).  Matched on a name followed
# by "(", whatever its schema or quoting.  Best effort: PostgreSQL's read-only
# transaction is the backstop for writes, this list is for what it allows.
_DENIED_CALLS = (
    (
        "settings can change the session or hold credentials",
        "set_config current_setting pg_show_all_settings pg_show_all_file_settings "
        "pg_hba_file_rules pg_ident_file_mappings",
    ),
    (
        "it signals or controls the server",
        "pg_terminate_backend pg_cancel_backend pg_signal_backend pg_reload_conf pg_promote "
        "pg_rotate_logfile* pg_log_backend_memory_contexts pg_switch_wal pg_create_restore_point "
        "pg_backup_* pg_start_backup pg_stop_backup pg_wal_replay_* pg_xlog_* pg_stat_reset* "
        "pg_import_system_collations",
    ),
    (
        "it reads or writes server files, large objects or the WAL",
        "pg_read_* pg_ls_* pg_file_* pg_stat_file pg_logdir_ls lo_* loread lowrite "
        "pg_get_wal_* get_raw_page",
    ),
    (
        "it runs SQL given as a string, which would bypass these checks",
        "query_to_xml* table_to_xml* cursor_to_xml* schema_to_xml* database_to_xml* "
        "ts_stat ts_rewrite pg_background_*",
    ),
    (
        "it changes sequences, takes locks or assigns transaction ids",
        "nextval setval currval lastval pg_advisory_* pg_try_advisory_* txid_* "
        "pg_current_xact_id* pg_export_snapshot",
    ),
    (
        "it reaches other databases or replication",
        "dblink* pg_notify pg_logical_* pg_replication_* pg_create_* pg_drop_* pg_copy_*",
    ),
    (
        "it shows other sessions' queries",
        "pg_stat_get_activity pg_stat_get_backend_activity pg_stat_statements*",
    ),
)
_DENIED_NAMES = {name: why for why, names in _DENIED_CALLS for name in names.split()}
_DENIED_PREFIXES = tuple((n[:-1], why) for n, why in _DENIED_NAMES.items() if n.endswith("*"))

_DENIED_RELATIONS = frozenset(
    {
        # credentials
        "pg_authid", "pg_shadow", "pg_user_mapping", "pg_user_mappings", "user_mapping_options",
        "pg_subscription", "pg_db_role_setting", "pg_hba_file_rules", "pg_ident_file_mappings",
        # settings (primary_conninfo can hold a password) and other sessions' queries
        "pg_settings", "pg_file_settings", "pg_stat_activity", "pg_stat_statements",
        "pg_stat_statements_info", "pg_stat_wal_receiver",
        # column statistics sample any table's values, pg_authid's too; large objects
        "pg_statistic", "pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic_ext_data",
        "pg_largeobject",
    }
)  # fmt: skip


class SqlRefused(Exception):
    """The SQL or its parameters are refused, or PostgreSQL refused to run them.

    ``message`` explains why, in a sentence fit for the 400 response; it never
    holds the connection's URL or password.  ``timed_out`` is true when the
    statement timeout cancelled the query (the HTTP layer may answer 504).
    """

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out


@dataclass(frozen=True, slots=True)
class Checked:
    sql: str  # the text to run: the trailing ";" removed
    max_param: int  # the highest $n used, 0 if none


def _identifier(token: Token) -> str:
    """The name as PostgreSQL resolves it, but case-folded for quoted names
    too (refusing "Set_Config"() as well is harmless)."""
    name = token.value if token.kind == "word" else token.value.lower()
    # PostgreSQL truncates names to 63 bytes.
    raw = name.encode("utf-8", "surrogatepass")
    return raw[:63].decode("utf-8", "ignore") if len(raw) > 63 else name


def _denied_function(name: str) -> str | None:
    if why := _DENIED_NAMES.get(name):
        return why
    return next((why for prefix, why in _DENIED_PREFIXES if name.startswith(prefix)), None)


def check_sql(text: str) -> Checked:
    if not isinstance(text, str):
        raise SqlRefused(f"`sql` must be a string, got {type(text).__name__}")
    if len(text) > MAX_SQL_LENGTH:
        raise SqlRefused(
            f"the SQL is {len(text)} characters long; at most {MAX_SQL_LENGTH} are allowed"
        )
    if "\x00" in text:
        raise SqlRefused("the SQL contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SqlRefused("the SQL is not valid Unicode text (an unpaired surrogate)") from None
    try:
        tokens = tokenize(text)
    except LexError as exc:
        raise SqlRefused(f"the SQL cannot be read: {exc.message}") from None
    end = len(tokens)
    for k, token in enumerate(tokens):
        if token.kind == "op" and token.value == ";":
            if k != len(tokens) - 1:
                raise SqlRefused(
                    f"only one statement is allowed, but more follows the ';' "
                    f"at character {token.char}"
                )
            end = k
    body = tokens[:end]
    first = next((t for t in body if not (t.kind == "op" and t.value == "(")), None)
    if first is None:
        raise SqlRefused("the SQL is empty: send one SELECT query")
    if first.kind != "word" or first.value not in _STARTS:
        shown = first.value.upper() if first.kind == "word" else text[first.pos : first.pos + 20]
        reason = _FORBIDDEN_WORDS.get(first.value) if first.kind == "word" else None
        raise SqlRefused(
            f"only one read-only query (SELECT, WITH, VALUES or TABLE) is allowed; "
            f"this statement starts with {shown}" + (f" ({reason})" if reason else "")
        )
    max_param = 0
    for k, token in enumerate(body):
        if token.kind == "param":
            max_param = max(max_param, int(token.value))
        elif token.kind == "uident":
            raise SqlRefused(
                f'Unicode-escaped identifiers (U&"...") are not allowed '
                f"(character {token.char}); write the name plainly"
            )
        if token.kind == "word":
            after = tuple(t.value if t.kind == "word" else "" for t in body[k + 1 : k + 4])
            if token.value == "for" and any(after[: len(seq)] == seq for seq in _LOCKING):
                raise SqlRefused(
                    f"locking clauses (FOR UPDATE, FOR SHARE...) are not allowed "
                    f"(character {token.char}): the SQL endpoint only reads"
                )
            if why := _FORBIDDEN_WORDS.get(token.value):
                raise SqlRefused(
                    f"{token.value.upper()} is not allowed (character {token.char}): {why}. "
                    f'A column of that name can be written quoted: "{token.value}"'
                )
        if token.kind in ("word", "ident"):
            name = _identifier(token)
            if name in _DENIED_RELATIONS:
                raise SqlRefused(
                    f"reading {name} is not allowed (character {token.char}): it holds "
                    f"credentials, server settings or other sessions' data"
                )
            following = body[k + 1] if k + 1 < len(body) else None
            called = following is not None and following.kind == "op" and following.value == "("
            if called and (why := _denied_function(name)):
                raise SqlRefused(
                    f"the function {name}() is not allowed (character {token.char}): {why}"
                )
    sql = text[: tokens[end].pos] if end < len(tokens) else text
    return Checked(sql, max_param)


def check_select(text: str) -> None:
    """Check that ``text`` is one read-only query the SQL endpoint may run.

    The checks are listed in this module's docstring; they read the text only
    (no database).  :func:`run_select` checks again, so calling this first is
    for early answers only.

    Raises:
        SqlRefused: the text is refused; ``message`` says why and where.
    """
    check_sql(text)


def check_params(params: Sequence[Any] | None, max_param: int) -> list[Any]:
    if params is None:
        params = []
    if not isinstance(params, (list, tuple)):
        raise SqlRefused(f"`params` must be a list, got {type(params).__name__}")
    if len(params) > MAX_PARAMS:
        raise SqlRefused(f"`params` has {len(params)} values; at most {MAX_PARAMS} are allowed")
    for i, value in enumerate(params):
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise SqlRefused(
                f"`params[{i}]` must be a string, number, boolean or null, "
                f"got {type(value).__name__}"
            )
        if isinstance(value, str):
            if "\x00" in value:
                raise SqlRefused(f"`params[{i}]` contains a NUL character")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise SqlRefused(
                    f"`params[{i}]` is not valid Unicode text (an unpaired surrogate)"
                ) from None
    if max_param > len(params):
        raise SqlRefused(f"the SQL uses ${max_param} but `params` has {len(params)} values")
    if len(params) > max_param:
        used = f"only up to ${max_param}" if max_param else "no $n placeholders"
        raise SqlRefused(f"`params` has {len(params)} values but the SQL uses {used}")
    return list(params)
