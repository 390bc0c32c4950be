"""Compiling the test contracts of tests/contracts with the pinned solc-js.

The shipped artifacts, tests/contracts/TestToken.json and TokenFactory.json,
are this module's output; regenerate them (after changing a source or the
pinned compiler) with::

    python -m tests.anvil._contract
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from ._node import ARTIFACT, CONTRACTS, FACTORY_ARTIFACT, Tools, install_tools

SOURCE = "TestToken.sol"
CONTRACT = "TestToken"
# (source, contract, artifact) of every shipped artifact.  TokenFactory's
# bytecode embeds ChildToken's creation code: one artifact serves both.
SHIPPED = (
    (SOURCE, CONTRACT, ARTIFACT),
    ("TokenFactory.sol", "TokenFactory", FACTORY_ARTIFACT),
)
# Without the CBOR metadata (which hashes the source text, comments
# included), the bytecode depends only on the code and these settings.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "metadata": {"appendCBOR": False},
}

# solc-js's own wrapper: standard JSON in on stdin, out on stdout.
_COMPILE_JS = """
const solc = require(process.argv[1]);
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({version: solc.version(), output: JSON.parse(solc.compile(input))}));
});
"""


def compile_token(tools: Tools, source: str = SOURCE, contract: str = CONTRACT) -> dict[str, Any]:
    """The artifact ``source`` compiles to now for ``contract`` (the shape of TestToken.json)."""
    standard_input = {
        "language": "Solidity",
        "sources": {source: {"content": (CONTRACTS / source).read_text()}},
        "settings": {
            **SETTINGS,
            "outputSelection": {source: {contract: ["abi", "evm.bytecode.object"]}},
        },
    }
    done = subprocess.run(
        ["node", "-e", _COMPILE_JS, str(tools.solc)],
        input=json.dumps(standard_input),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"solc-js failed ({done.returncode}):\n{done.stderr}")
    result = json.loads(done.stdout)
    errors = [e for e in result["output"].get("errors", []) if e["severity"] == "error"]
    if errors:
        raise RuntimeError("\n".join(e["formattedMessage"] for e in errors))
    compiled = result["output"]["contracts"][source][contract]
    return {
        "contractName": contract,
        "sourceName": source,
        "compiler": {"name": "solc-js", "npm": f"solc@{tools.solc_version}"},
        "compilerVersion": result["version"],
        "settings": SETTINGS,
        "abi": compiled["abi"],
        "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
    }


def main() -> None:
    tools = install_tools()
    for source, contract, path in SHIPPED:
        built = compile_token(tools, source, contract)
        path.write_text(json.dumps(built, indent=2) + "\n")
        print(f"wrote {path} ({len(built['bytecode']) // 2 - 1} bytes of creation code)")


if __name__ == "__main__":
    main()
