"""The sandbox clock under load: what the model-based test needed from it.

The model test runs hundreds of transactions through a sandbox that follows the wall clock.
Each closed ledger used to add 5 s to that clock too, so after about 60 transactions it ran
more than 300 s ahead of real time and every Airtm webhook, stamped with it, was refused by
the API as stale (401): top-ups never learnt they were paid. A frozen clock (the default of
tests) still moves one ledger's worth per close.
"""

import time

from providers.sandbox.app import Sandbox
from providers.sandbox.chain import SandboxChain
from providers.sandbox.clock import SandboxClock

START_S = 1_800_000_000


def _close_ledgers(chain: SandboxChain, count: int) -> int:
    """Submit ``count`` transactions (each closes a ledger); the ledger number after them."""
    for _ in range(count):
        assert chain.activate().public_key  # two transactions: friendbot + trustline
    return chain.ledger


def test_a_clock_that_follows_real_time_does_not_run_ahead_of_it() -> None:
    sandbox = Sandbox(seed=5, follow_wall_clock=True)
    first = sandbox.chain.ledger
    last = _close_ledgers(sandbox.chain, 50)
    assert last - first >= 100
    # 100 ledgers used to put it 500 s ahead; real time is all that may have passed.
    assert sandbox.clock.now() - time.time() < 1.0


def test_a_frozen_clock_still_moves_five_seconds_a_ledger() -> None:
    chain = SandboxChain(SandboxClock(START_S), seed=5)
    first, before = chain.ledger, chain.clock.now()
    last = _close_ledgers(chain, 3)
    assert chain.clock.now() == before + 5 * (last - first)
