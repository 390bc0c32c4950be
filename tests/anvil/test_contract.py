"""The shipped artifacts are what the pinned solc-js makes of their sources; TestToken works on anvil."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from ._contract import SHIPPED, compile_token
from ._node import token_state

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ._indexer import Followed
    from ._node import Tools, Traffic

pytestmark = pytest.mark.anvil


@pytest.mark.parametrize(("source", "contract", "path"), SHIPPED, ids=[c for _s, c, _p in SHIPPED])
def test_artifact_is_what_the_pinned_solc_compiles(
    anvil_tools: Tools, source: str, contract: str, path: Path
) -> None:
    shipped = json.loads(path.read_text())
    built = compile_token(anvil_tools, source, contract)
    assert built["compilerVersion"].startswith(anvil_tools.solc_version + "+")
    assert built["compilerVersion"] == shipped["compilerVersion"]
    assert built["settings"] == shipped["settings"]
    assert built["abi"] == shipped["abi"]
    assert built["bytecode"] == shipped["bytecode"]  # exactly: no metadata hash to strip


def test_token_traffic_on_anvil_adds_up(
    token_chain: Callable[[int, int], tuple[Followed, Traffic]],
) -> None:
    chain, traffic = token_chain(31337, 1)
    traffic.blocks(8, per_block=12)
    state = token_state(chain.node, chain.token)
    assert sum(state.balances.values()) == state.total_supply > 0
    assert state.transfers == traffic.sent
    assert set(traffic.kinds) == {"mint", "transfer", "burn", "self", "zero", "transferFrom"}
    assert any(b == 0 for b in state.balances.values())  # some balance was spent to zero
