"""What a failing handler's exception becomes: one rule for log and block handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import DatabaseError, EntityError, HandlerError, IndexerError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["handler_failure"]


def handler_failure(exc: Exception, where: Callable[[str], str], loading: str) -> Exception | None:
    """The error to raise for ``exc`` from a handler, or None to re-raise ``exc`` as it is.

    Args:
        where: Says which handler failed where, given what went wrong.
        loading: Names the handler's position, for a failed load.
    """
    if isinstance(exc, DatabaseError):
        # A load for the handler failed: the database's fault, not the handler's.
        return DatabaseError(
            f"loading entities for {loading} failed: {exc}. Nothing of this batch was committed; "
            "`indexer run` resumes from the last committed block."
        )
    if isinstance(exc, EntityError):
        return HandlerError(where(f"an entity got an invalid value: {exc}"))
    if isinstance(exc, IndexerError):
        return None
    return HandlerError(where(f"{type(exc).__name__}: {exc}"))
