"""Fixtures of the anvil end-to-end tests: the pinned tools, anvil nodes, the indexer CLI.

anvil and solc-js come from npm through tools/install_anvil.sh (a no-op once
the pinned versions are installed; .ci/run runs it before the tests).  If
they cannot be installed, or anvil does not start, the tests fail with the
reason: they never skip, so CI cannot go green without them.  Every test
here is marked ``anvil``: ``pytest -m "not anvil"`` leaves them out.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest

from ._indexer import Followed, IndexerCli, write_project
from ._node import Anvil, Tools, Traffic, deploy_token, install_tools

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path


@pytest.fixture(scope="session")
def anvil_tools() -> Tools:
    try:
        return install_tools()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def start_anvil(anvil_tools: Tools, tmp_path: Path) -> Iterator[Callable[[int], Anvil]]:
    """Start an anvil with the given chain id; every one is stopped at teardown."""
    nodes: list[Anvil] = []

    def start(chain_id: int) -> Anvil:
        try:
            node = Anvil(anvil_tools.anvil, chain_id, tmp_path / f"anvil-{chain_id}.log")
        except (RuntimeError, OSError) as exc:
            pytest.fail(f"anvil {anvil_tools.anvil} did not start: {exc}", pytrace=False)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def token_chain(
    start_anvil: Callable[[int], Anvil],
) -> Callable[[int, int], tuple[Followed, Traffic]]:
    """An anvil with TestToken deployed, approvals made and a first mint to every sender."""

    def make(chain_id: int, seed: int) -> tuple[Followed, Traffic]:
        node = start_anvil(chain_id)
        token = deploy_token(node)
        traffic = Traffic(node, token, random.Random(seed))
        traffic.setup()
        return Followed(node, token), traffic

    return make


@pytest.fixture
def indexer_cli(
    tmp_path: Path, database_url: str, schema: str
) -> Iterator[Callable[[Sequence[Followed]], IndexerCli]]:
    """A project following the given chains into ``schema``, and its (not yet started) CLI.

    Whatever still runs at teardown is killed.
    """
    clis: list[IndexerCli] = []

    def make(chains: Sequence[Followed]) -> IndexerCli:
        project = write_project(tmp_path / "project", schema, chains)
        cli = IndexerCli(project, database_url, tmp_path, [c.node for c in chains])
        clis.append(cli)
        return cli

    yield make
    for cli in clis:
        cli.kill()
