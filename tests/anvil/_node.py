"""anvil, Foundry's EVM node, as a child process; the test token on it; random traffic.

Everything here is synchronous: the tests drive the node and poll the
database from the test thread while ``indexer run`` follows the node in a
process of its own.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Sequence

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = ROOT / "tools" / "install_anvil.sh"
CONTRACTS = ROOT / "tests" / "contracts"
ARTIFACT = CONTRACTS / "TestToken.json"
FACTORY_ARTIFACT = CONTRACTS / "TokenFactory.json"

TRANSFER = "0x" + keccak(b"Transfer(address,address,uint256)").hex()
ZERO = "0x" + "0" * 40
MAX_UINT = 2**256 - 1
# anvil's default dev accounts come from this mnemonic; it is passed
# explicitly so that the accounts (and the token's address) never change.
MNEMONIC = "test test test test test test test test test test test junk"
# Holders that never send a transaction: they only receive.
PASSIVE = ("0x" + "ab" * 20, "0x" + "cd" * 20, "0x" + "0123456789" * 4)
GAS = hex(200_000)


@dataclass(frozen=True)
class Tools:
    """The pinned tools installed by tools/install_anvil.sh."""

    anvil: Path
    anvil_version: str
    solc: Path  # the solc npm package directory
    solc_version: str


def install_tools() -> Tools:
    """Run tools/install_anvil.sh (a no-op when done already) and read where things are.

    Raises RuntimeError with the script's output when it fails: the tests
    that need anvil must fail, never skip, when it cannot be had.
    """
    try:
        done = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{INSTALL_SCRIPT} could not run: {exc}") from exc
    if done.returncode != 0:
        raise RuntimeError(
            f"{INSTALL_SCRIPT} failed with status {done.returncode}; anvil and solc-js are needed "
            f"by tests/anvil (they come from npm: Node.js >= 20 and access to the npm registry).\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return Tools(
        anvil=Path(values["anvil"]),
        anvil_version=values["anvil_version"],
        solc=Path(values["solc"]),
        solc_version=values["solc_version"],
    )


class RpcFailure(RuntimeError):
    """A JSON-RPC error answer."""


class Anvil:
    """One anvil process, bound to 127.0.0.1 on a port of its own choosing.

    Started with ``--no-mining``: blocks are mined only when a test says so,
    so the chain stands still while the test checks the indexer against it.
    """

    def __init__(self, binary: Path, chain_id: int, log_path: Path) -> None:
        self.chain_id = chain_id
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                str(binary),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--chain-id",
                str(chain_id),
                "--mnemonic",
                MNEMONIC,
                "--accounts",
                "10",
                "--no-mining",
                "--order",
                "fifo",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = ""
        self._client = httpx.Client(timeout=30)
        self._ids = 0
        try:
            self.url = self._wait_listening(timeout=30)
            got = int(self.rpc("eth_chainId"), 16)
            if got != chain_id:
                raise RuntimeError(f"anvil answers chain id {got}, not {chain_id}")
            self.accounts: list[str] = [a.lower() for a in self.rpc("eth_accounts")]
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith("Listening on "):
                    return "http://" + line.removeprefix("Listening on ").strip()
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"anvil exited with status {self.process.returncode} before listening:\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"anvil did not listen within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.02)

    def calls(self, method: str) -> int:
        """How many requests for ``method`` the node has served (anvil logs each method name)."""
        return self.log_path.read_text(errors="replace").splitlines().count(method)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop by PID: SIGTERM, then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._client.close()
        self._log.close()

    # -- JSON-RPC ---------------------------------------------------------

    def rpc(self, method: str, *params: Any) -> Any:
        self._ids += 1
        answer = self._client.post(
            self.url, json={"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
        ).json()
        if "error" in answer:
            raise RpcFailure(f"{method}{list(params)!r}: {answer['error']}")
        return answer["result"]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if not calls:
            return []
        first = self._ids + 1
        self._ids += len(calls)
        payload = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)}
            for i, (m, p) in enumerate(calls)
        ]
        answers = {a["id"]: a for a in self._client.post(self.url, json=payload).json()}
        out = []
        for i, (method, params) in enumerate(calls):
            answer = answers[first + i]
            if "error" in answer:
                raise RpcFailure(f"{method}{list(params)!r}: {answer['error']}")
            out.append(answer["result"])
        return out

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def block_hash(self, number: int) -> str:
        block = self.rpc("eth_getBlockByNumber", hex(number), False)
        return str(block["hash"]).lower()

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def send(self, tx: dict[str, Any]) -> str:
        return str(self.rpc("eth_sendTransaction", {"gas": GAS, **tx}))

    def transfer_logs(self, token: str, first: int, last: int) -> list[dict[str, Any]]:
        logs: list[dict[str, Any]] = self.rpc(
            "eth_getLogs",
            {"fromBlock": hex(first), "toBlock": hex(last), "address": token, "topics": [TRANSFER]},
        )
        return logs


def selector(signature: str) -> bytes:
    return keccak(signature.encode())[:4]


def calldata(signature: str, *args: Any) -> str:
    inner = signature[signature.index("(") + 1 : -1]
    types = inner.split(",") if inner else []
    return "0x" + (selector(signature) + abi_encode(types, list(args))).hex()


def artifact() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(ARTIFACT.read_text())
    return loaded


def deploy_token(node: Anvil) -> str:
    """Deploy TestToken from the first dev account; the token's address."""
    tx = node.send(
        {"from": node.accounts[0], "data": artifact()["bytecode"], "gas": hex(3_000_000)}
    )
    node.mine()
    receipt = node.rpc("eth_getTransactionReceipt", tx)
    if receipt is None or receipt["status"] != "0x1":
        raise RuntimeError(f"TestToken deployment failed: {receipt}")
    return str(receipt["contractAddress"]).lower()


@dataclass
class ChainState:
    """What the token holds on one node at one block, read with eth_call and eth_getLogs."""

    block: int
    balances: dict[str, int]  # every address that ever held or received tokens
    total_supply: int
    transfers: int  # Transfer logs of the token up to ``block``


def token_state(node: Anvil, token: str, block: int | None = None) -> ChainState:
    """The token's state at ``block`` (default: the head), from the node alone."""
    block = node.head() if block is None else block
    logs = node.transfer_logs(token, 0, block)
    holders = sorted(
        {"0x" + t[-40:] for lg in logs for t in lg["topics"][1:3]} - {ZERO} | set(node.accounts)
    )
    tag = hex(block)
    calls: list[tuple[str, Sequence[Any]]] = [
        ("eth_call", [{"to": token, "data": calldata("balanceOf(address)", h)}, tag])
        for h in holders
    ]
    calls.append(("eth_call", [{"to": token, "data": calldata("totalSupply()")}, tag]))
    results = [abi_decode(["uint256"], bytes.fromhex(r[2:]))[0] for r in node.batch(calls)]
    return ChainState(
        block=block,
        balances=dict(zip(holders, results[:-1], strict=True)),
        total_supply=results[-1],
        transfers=len(logs),
    )


@dataclass
class Traffic:
    """Random token transactions from the dev accounts, each of which emits one Transfer.

    Transactions only spend what the sender held at the parent of the block
    (or of the first replaced block, for a reorg), less what it already
    spent in the transactions being built, so none of them reverts whatever
    order they execute in.  Every transaction therefore adds exactly one
    Transfer log, which :meth:`check_logs` verifies.
    """

    node: Anvil
    token: str
    rng: random.Random
    sent: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def senders(self) -> list[str]:
        return self.node.accounts[:9]

    @property
    def operator(self) -> str:
        """Spends the first five accounts' tokens with transferFrom."""
        return self.node.accounts[9]

    def setup(self) -> None:
        """Approvals for the operator (Approval events: not indexed) and a first mint."""
        for owner in self.senders[:5]:
            self.node.send(
                {
                    "from": owner,
                    "to": self.token,
                    "data": calldata("approve(address,uint256)", self.operator, MAX_UINT),
                }
            )
        self.node.mine()
        self.blocks(1, per_block=len(self.senders), only_mints=True)

    def _recipients(self) -> list[str]:
        return [*self.node.accounts, *PASSIVE]

    def plan(
        self, spendable: dict[str, int], count: int, only_mints: bool = False
    ) -> list[dict[str, Any]]:
        """``count`` transactions that fit ``spendable`` (updated in place)."""
        rng, txs = self.rng, []
        for i in range(count):
            rich = [s for s in self.senders if spendable.get(s, 0) > 0]
            kind = (
                "mint"
                if only_mints or not rich
                else rng.choices(
                    ["transfer", "mint", "burn", "self", "zero", "transferFrom"],
                    weights=[35, 20, 10, 10, 10, 15],
                )[0]
            )
            if kind == "transferFrom" and not any(spendable.get(s, 0) for s in self.senders[:5]):
                kind = "transfer"
            sender = (
                self.senders[i % len(self.senders)]
                if only_mints
                else rng.choice(rich or self.senders)
            )
            to = rng.choice([r for r in self._recipients() if r != sender])
            value = self._amount(spendable.get(sender, 0))
            if kind == "mint":
                value = rng.randint(1, 10**21)
                tx = {"from": sender, "data": calldata("mint(address,uint256)", to, value)}
            elif kind == "burn":
                tx = {"from": sender, "data": calldata("burn(uint256)", value)}
            elif kind == "self":
                tx = {"from": sender, "data": calldata("transfer(address,uint256)", sender, value)}
            elif kind == "zero":
                sender = rng.choice(self.senders)
                to = rng.choice(self._recipients())
                value = 0
                tx = {"from": sender, "data": calldata("transfer(address,uint256)", to, 0)}
            elif kind == "transferFrom":
                sender = rng.choice([s for s in self.senders[:5] if spendable.get(s, 0) > 0])
                value = self._amount(spendable[sender])
                tx = {
                    "from": self.operator,
                    "data": calldata("transferFrom(address,address,uint256)", sender, to, value),
                }
            else:
                tx = {"from": sender, "data": calldata("transfer(address,uint256)", to, value)}
            if kind != "mint":
                spendable[sender] = spendable.get(sender, 0) - value
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            txs.append({**tx, "to": self.token, "gas": GAS})
        return txs

    def _amount(self, available: int) -> int:
        if available <= 0:
            return 0
        # Now and then everything: the balance drops to zero (the entity is deleted).
        return available if self.rng.random() < 0.2 else self.rng.randint(1, available)

    def _spendable(self, block: int) -> dict[str, int]:
        state = token_state(self.node, self.token, block)
        return {s: state.balances.get(s, 0) for s in self.senders}

    def blocks(self, count: int, per_block: int = 10, only_mints: bool = False) -> None:
        """Mine ``count`` blocks of ``1..per_block`` transactions each."""
        for _ in range(count):
            first = self.node.head() + 1
            n = per_block if only_mints else self.rng.randint(1, per_block)
            txs = self.plan(self._spendable(first - 1), n, only_mints)
            for tx in txs:
                self.node.send(tx)
            self.node.mine()
            self.check_logs(first, first, len(txs))

    def reorg(
        self, depth: int, per_block: int = 4, then: Callable[[], None] | None = None
    ) -> tuple[int, int]:
        """Replace the last ``depth`` blocks with as many new ones (anvil_reorg).

        Every new block gets different transactions (the first at least
        one), so every replaced block changes hash.  ``then`` runs right
        after the node has switched branches.  Returns (head, the common
        block below the replaced ones).
        """
        head = self.node.head()
        common = head - depth
        spendable = self._spendable(common)
        pairs: list[tuple[dict[str, Any], int]] = []
        for offset in range(depth):
            n = self.rng.randint(1 if offset == 0 else 0, per_block)
            pairs.extend((tx, offset) for tx in self.plan(spendable, n))
        old = self.node.block_hash(head)
        self.node.rpc("anvil_reorg", depth, [[tx, offset] for tx, offset in pairs])
        if then is not None:
            then()
        if self.node.head() != head or self.node.block_hash(head) == old:
            raise RuntimeError(f"anvil_reorg({depth}) did not replace block {head}")
        self.check_logs(common + 1, head, len(pairs))
        return head, common

    def check_logs(self, first: int, last: int, count: int) -> None:
        """Every transaction succeeded: one Transfer log each in ``first..last``."""
        logs = self.node.transfer_logs(self.token, first, last)
        if len(logs) != count:
            raise RuntimeError(
                f"blocks {first}..{last}: {len(logs)} Transfer logs for {count} transactions"
            )
        self.sent += count


def snapshot(node: Anvil) -> str:
    return str(node.rpc("evm_snapshot"))


def revert(node: Anvil, snapshot_id: str) -> None:
    if node.rpc("evm_revert", snapshot_id) is not True:
        raise RuntimeError(f"evm_revert({snapshot_id}) failed")
