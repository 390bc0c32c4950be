"""Checking a chain's ``factory`` keys against its contracts: names, events, parameters, cycles."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._project import ContractConfig
    from ._validate import Where

__all__ = ["check_factories"]


def check_factories(contracts: Sequence[ContractConfig], at: Where) -> None:
    """Each ``contracts[i].factory`` names another contract of the chain, its events, an address.

    ``at`` is the chain's ``contracts`` key; every message names the key
    path of the value at fault.  A cycle (A's children register B's and B's
    register A's) is refused: no address of either could ever be the first.
    """
    by_name = {c.name: (i, c) for i, c in enumerate(contracts)}
    for i, contract in enumerate(contracts):
        factory = contract.factory
        if factory is None:
            continue
        here = at.item(i).key("factory")
        if factory.contract == contract.name:
            here.key("contract").fail(
                f"{contract.name!r} cannot be its own factory; name the contract whose events "
                "register its addresses."
            )
        if factory.contract not in by_name:
            here.key("contract").fail(
                f"{factory.contract!r} is not a contract of this chain; known: "
                f"{', '.join(sorted(by_name))}."
            )
        _, parent = by_name[factory.contract]
        events = {e.name: e for e in parent.events}
        for k, name in enumerate(factory.events):
            where = here.key("event") if len(factory.events) == 1 else here.key("event").item(k)
            spec = events.get(name)
            if spec is None:
                where.fail(
                    f"{name!r} is not an event of contract {parent.name!r}; its events: "
                    f"{', '.join(sorted(events)) or 'none'}."
                )
            params = {p.name: p for p in spec.inputs}
            param = params.get(factory.parameter)
            if param is None:
                here.key("parameter").fail(
                    f"{factory.parameter!r} is not a parameter of {parent.name}.{spec.signature}; "
                    f"its parameters: {', '.join(params) or 'none'}."
                )
            if param.type != "address":
                here.key("parameter").fail(
                    f"{factory.parameter!r} of {parent.name}.{spec.signature} is a {param.type}, "
                    "not an address; name the parameter that holds the child's address."
                )
    for i, contract in enumerate(contracts):
        seen = [contract.name]
        current = contract
        while current.factory is not None:
            nxt = by_name[current.factory.contract][1]
            if nxt.name in seen:
                at.item(i).key("factory").key("contract").fail(
                    f"the factories form a cycle ({' <- '.join([*seen, nxt.name])}): no contract of "
                    "it could ever get its first address."
                )
            seen.append(nxt.name)
            current = nxt
