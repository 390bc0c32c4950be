"""The two queries the benchmark sends, as load-generator specs (``loadgen.py`` builds the bytes)."""

from __future__ import annotations

from typing import Any

PAGE_LIMIT = 50


def by_id_query(entity: str) -> str:
    """One entity by primary key: ``holding(id: $id)``."""
    return f"query($id: String!) {{ {entity}(id: $id) {{ id token holder balance }} }}"


def page_query(entity: str) -> str:
    """A filtered page ordered by balance, with its total count and cursor."""
    return (
        f'query($t: String!) {{ {entity}s(where: {{token: $t, balance_gt: "0"}}, '
        f'orderBy: "balance", orderDirection: "desc", limit: {PAGE_LIMIT}) '
        "{ totalCount items { id holder balance } pageInfo { hasNextPage endCursor } } }"
    )


def kinds(entity: str, ids: list[str], tokens: list[str], *, allow_null: bool) -> dict[str, Any]:
    """The ``by_id`` and ``page`` kinds over these ids and tokens (``entity`` in lower camel case).

    ``allow_null``: a by-id answer may be null (during indexing, a sampled id may not
    exist yet); otherwise it must be the row asked for.
    """
    return {
        "by_id": {
            "query": by_id_query(entity),
            "check": "by_id",
            "field": entity,
            "allow_null": allow_null,
            "variables": [{"id": i} for i in ids],
        },
        "page": {
            "query": page_query(entity),
            "check": "page",
            "field": entity + "s",
            "limit": PAGE_LIMIT,
            "variables": [{"t": t} for t in tokens],
        },
    }
