"""A Hypothesis state machine over mints, transfers and burns of two tokens.

Hypothesis plays a token contract: it picks sequences of mints (from the
zero address), transfers and burns (to the zero address), never moving more
than the sender holds.  Each step is sent through the real handlers with an
in-memory :class:`~indexer.testing.HandlerHarness`.  After every step the
indexed ``Account`` entities must:

* match a plain dict model of balances and transfer counts;
* sum, over the holders of each token, to what was minted minus what was
  burned (the supply), with the zero address holding minus the supply.

When a step breaks an invariant, Hypothesis shrinks the sequence to a
shortest one that still does, and prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import handlers
import trio
from handlers import Account
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from indexer.testing import HandlerHarness

PROJECT = Path(__file__).resolve().parent.parent
ZERO = "0x" + "00" * 20
TOKENS = st.sampled_from(["0x" + "a0" * 20, "0x" + "b0" * 20])
HOLDERS = st.sampled_from(["0x" + f"{i:040x}" for i in range(1, 5)])
AMOUNTS = st.integers(min_value=0, max_value=2**256 - 1)


class Balances(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # A memory-only harness is plain Python: the synchronous rules drive it
        # with trio.run, one send per step.
        self.harness = HandlerHarness(PROJECT, handlers=handlers)
        self.block = 0
        # The model: (token, holder) -> (balance, transfers), and supply per token.
        self.accounts: dict[tuple[str, str], tuple[int, int]] = {}
        self.supply: dict[str, int] = {}

    def balance(self, token: str, holder: str) -> int:
        return self.accounts.get((token, holder), (0, 0))[0]

    def move(self, token: str, sender: str, receiver: str, value: int) -> None:
        """Send one Transfer through the handlers and apply it to the model."""
        self.block += 1
        event = self.harness.event(
            "ERC20",
            "Transfer",
            {"from": sender, "to": receiver, "value": value},
            address=token,
            block_number=self.block,
        )
        trio.run(self.harness.send, event)
        for holder, delta in ((sender, -value), (receiver, value)):
            balance, count = self.accounts.get((token, holder), (0, 0))
            self.accounts[token, holder] = (balance + delta, count + 1)

    @rule(token=TOKENS, to=HOLDERS, value=AMOUNTS)
    def mint(self, token: str, to: str, value: int) -> None:
        # The supply stays below 2**256, as a real token's would.
        value = min(value, 2**256 - 1 - self.supply.get(token, 0))
        self.move(token, ZERO, to, value)
        self.supply[token] = self.supply.get(token, 0) + value

    @rule(token=TOKENS, sender=HOLDERS, receiver=HOLDERS, data=st.data())
    def transfer(self, token: str, sender: str, receiver: str, data: Any) -> None:
        value = data.draw(st.integers(0, self.balance(token, sender)), label="value")
        self.move(token, sender, receiver, value)

    @rule(token=TOKENS, holder=HOLDERS, data=st.data())
    def burn(self, token: str, holder: str, data: Any) -> None:
        value = data.draw(st.integers(0, self.balance(token, holder)), label="value")
        self.move(token, holder, ZERO, value)
        self.supply[token] = self.supply.get(token, 0) - value

    @invariant()
    def entities_match_the_model(self) -> None:
        indexed = {
            (a.token, a.holder): (a.balance, a.transfers)
            for a in self.harness.all(Account).values()
        }
        assert indexed == self.accounts

    @invariant()
    def holders_sum_to_the_supply(self) -> None:
        totals: dict[str, int] = {}
        for account in self.harness.all(Account).values():
            supply = self.supply.get(account.token, 0)
            if account.holder == ZERO:
                assert account.balance == -supply, account
            else:
                assert account.balance >= 0, account
                totals[account.token] = totals.get(account.token, 0) + account.balance
        assert totals == {token: self.supply.get(token, 0) for token in totals}
        assert totals.keys() >= self.supply.keys()


TestBalances = Balances.TestCase
TestBalances.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
