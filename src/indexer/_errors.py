"""The errors a user of `indexer` can meet.

Every error a user can cause carries a one-paragraph message that names what
failed (a file and key, a block and log index, an entity and id) and what to
do about it.  The CLI prints ``str(error)`` and exits with status 1; the
traceback is shown only with ``--debug``.

Hierarchy::

    IndexerError
    ├── ConfigError          indexer.yaml or the handlers module is wrong
    ├── DecodeError          a log does not match the event it claims to be
    ├── HandlerError         a user handler raised (the cause is chained)
    ├── EntityError          a value given to ctx.set does not fit its field
    ├── SchemaMismatchError  the database was built for other entities
    ├── AlreadyRunningError  another run is indexing the same schema
    ├── DatabaseError        PostgreSQL failed or could not be reached
    │   └── WriteError       a batch write failed (nothing of it committed)
    └── SourceError          the log source failed (file unreadable, RPC error)
        └── ReorgTooDeepError
"""

from __future__ import annotations

__all__ = [
    "AlreadyRunningError",
    "ConfigError",
    "DatabaseError",
    "DecodeError",
    "EntityError",
    "HandlerError",
    "IndexerError",
    "ReorgTooDeepError",
    "SchemaMismatchError",
    "SourceError",
    "WriteError",
]


class IndexerError(Exception):
    """Base class of every error `indexer` raises on purpose."""

    __module__ = "indexer"


class ConfigError(IndexerError):
    """The project configuration (``indexer.yaml``, ABI files, handlers module) is invalid."""

    __module__ = "indexer"


class DecodeError(IndexerError):
    """A log's topics or data do not fit the event ABI it was matched to."""

    __module__ = "indexer"


class HandlerError(IndexerError):
    """A user handler raised; ``__cause__`` is the original exception."""

    __module__ = "indexer"


class EntityError(IndexerError):
    """An entity value does not fit its declared field type."""

    __module__ = "indexer"


class SchemaMismatchError(IndexerError):
    """The database schema was created for different entity definitions."""

    __module__ = "indexer"


class AlreadyRunningError(IndexerError):
    """Another ``indexer run`` is indexing the same schema of the same database."""

    __module__ = "indexer"


class DatabaseError(IndexerError):
    """PostgreSQL failed or could not be reached."""

    __module__ = "indexer"


class WriteError(DatabaseError):
    """A batch write failed; its transaction was rolled back, nothing of it is stored."""

    __module__ = "indexer"


class SourceError(IndexerError):
    """The log source (file or JSON-RPC node) failed."""

    __module__ = "indexer"


class ReorgTooDeepError(SourceError):
    """A chain reorganisation went deeper than ``max_reorg_depth``."""

    __module__ = "indexer"
