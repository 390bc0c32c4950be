"""What the API serves of a project, replaceable while it serves: :class:`ApiView`.

The app reads :attr:`ApiView.current` once at the start of each request and
uses that object to the end of it.  :meth:`ApiView.replace` builds the new
GraphQL service first (the slow part, and the one that can fail) and then
swaps one reference, so the swap is atomic for the event loop and for the
worker threads alike: a request in flight finishes on the schema it
started with, the next one sees the new schema, and no request ever sees
half of each.  ``indexer dev --serve`` replaces the view after every reload
whose entities or chains changed, without restarting the server.

The view does not cover the database schema name: the reader's connections
and the live-event listener are bound to it when the server starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._graphql import GraphQLService

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..store import EntitySpec
    from ._options import ApiLimits
    from ._status import ChainTarget

__all__ = ["ApiView", "Served"]


@dataclass(frozen=True)
class Served:
    """One generation of the view: read as a whole, never changed."""

    #: None until a first set of entities is given (``reason`` says why).
    graphql: GraphQLService | None
    targets: tuple[ChainTarget, ...]
    reason: str = ""


class ApiView:
    """The GraphQL schema and the chain targets the API answers with.

    Args:
        limits: the GraphQL limits every generation's service is built with.
        specs: the entities; None for a server that starts before any
            handlers could be loaded (GraphQL answers 503 with ``reason``
            until :meth:`replace` is called).
        targets: the configured chains (``/status``, ``/ready``).
        reason: why there is no schema, when ``specs`` is None.

    Raises:
        ConfigError: an entity cannot be given a GraphQL schema.
    """

    def __init__(
        self,
        limits: ApiLimits,
        specs: Sequence[EntitySpec] | None,
        targets: Sequence[ChainTarget],
        *,
        reason: str = "the project's entities are not loaded yet",
    ) -> None:
        self.limits = limits
        self._current = Served(None, tuple(targets), reason)
        if specs is not None:
            self.replace(specs, targets)

    @property
    def current(self) -> Served:
        """The generation a new request uses."""
        return self._current

    def replace(self, specs: Sequence[EntitySpec], targets: Sequence[ChainTarget]) -> None:
        """Serve ``specs`` and ``targets`` from the next request on.

        Raises:
            ConfigError: an entity cannot be given a GraphQL schema; the
                current generation is kept.
        """
        graphql = GraphQLService(
            specs,
            max_depth=self.limits.max_depth,
            max_aliases=self.limits.max_aliases,
            max_body_bytes=self.limits.max_body_bytes,
        )
        self._current = Served(graphql, tuple(targets))
