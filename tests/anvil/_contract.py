"""Compiling tests/contracts/TestToken.sol with the pinned solc-js.

The shipped artifact, tests/contracts/TestToken.json, is this module's
output; regenerate it (after changing the source or the pinned compiler)
with::

    python -m tests.anvil._contract
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from ._node import ARTIFACT, CONTRACTS, Tools, install_tools

SOURCE = "TestToken.sol"
CONTRACT = "TestToken"
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


def compile_token(tools: Tools) -> dict[str, Any]:
    """The artifact TestToken.sol compiles to now (the shape of TestToken.json)."""
    source = (CONTRACTS / SOURCE).read_text()
    standard_input = {
        "language": "Solidity",
        "sources": {SOURCE: {"content": source}},
        "settings": {
            **SETTINGS,
            "outputSelection": {SOURCE: {CONTRACT: ["abi", "evm.bytecode.object"]}},
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
    compiled = result["output"]["contracts"][SOURCE][CONTRACT]
    return {
        "contractName": CONTRACT,
        "sourceName": SOURCE,
        "compiler": {"name": "solc-js", "npm": f"solc@{tools.solc_version}"},
        "compilerVersion": result["version"],
        "settings": SETTINGS,
        "abi": compiled["abi"],
        "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
    }


def main() -> None:
    built = compile_token(install_tools())
    ARTIFACT.write_text(json.dumps(built, indent=2) + "\n")
    print(f"wrote {ARTIFACT} ({len(built['bytecode']) // 2 - 1} bytes of creation code)")


if __name__ == "__main__":
    main()
