"""An API key in the JSON-RPC URL never reaches the output.

The reference promises that a password or API key in an ``rpc`` URL is
never shown: messages and logs print it redacted.  But ``indexer run``
configured logging at INFO for every library, and httpx logged each request
at INFO with its full URL (``INFO httpx: HTTP Request: POST
http://node/?apikey=... "HTTP/1.1 200 OK"``), on stderr, several times per
poll.  These tests found it; the CLI now keeps the ``httpx`` and
``httpcore`` loggers at WARNING.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from ._indexer import write_project

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ._indexer import Followed
    from ._node import Traffic

pytestmark = pytest.mark.anvil

SECRET = "s3cr3tApiKey0123456789abcdef"


def test_an_api_key_in_the_rpc_url_is_not_printed(
    token_chain: Callable[[int, int], tuple[Followed, Traffic]],
    tmp_path: Path,
    database_url: str,
    schema: str,
) -> None:
    chain, traffic = token_chain(31337, 51)
    traffic.blocks(3)
    project = write_project(tmp_path / "project", schema, [chain], end_block=chain.node.head())
    config = project / "indexer.yaml"
    url = chain.node.url
    config.write_text(config.read_text().replace(f"'{url}'", f"'{url}/?apikey={SECRET}'"))
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "run", str(project), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "INDEXER_DATABASE_URL": database_url},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "committed through block" in done.stdout  # it did talk to the node
    assert SECRET not in done.stdout
    leaks = [line for line in done.stderr.splitlines() if SECRET in line]
    assert leaks == [], f"{len(leaks)} lines, e.g. {leaks[0]}"
