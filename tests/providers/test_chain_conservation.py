"""Conservation (providers.md 5.6): over random traffic, USDC changes only by mint and burn."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair
from stellar_sdk.operation import Operation, Payment

from common.money import format_amount
from providers.sandbox.chain import SandboxChain
from providers.sandbox.clock import SandboxClock

WALLETS = 4
USDC = 10_000_000
# (kind, from wallet, to wallet, amount in stroops, operations); to == WALLETS: no such account.
Step = tuple[str, int, int, int, int]

steps = st.lists(
    st.tuples(
        st.sampled_from(["pay", "deposit", "mint", "burn", "xlm"]),
        st.integers(0, WALLETS - 1),
        st.integers(0, WALLETS),
        st.integers(1, 30 * USDC),
        st.integers(1, 3),
    ),
    max_size=25,
)


def _run(chain: SandboxChain, step: Step, wallets: list[Keypair], ghost: str) -> None:
    kind, source, target, amount, ops = step
    to = wallets[target].public_key if target < WALLETS else ghost
    if kind == "deposit":
        chain.deposit(to, amount, ops=ops)
    elif kind == "mint":
        chain.mint(to, amount)
    elif kind == "xlm":
        chain.deposit(to, amount, asset="XLM")
    else:
        payee = chain.issuer.public_key if kind == "burn" else to
        payments: list[Operation] = [
            Payment(payee, chain.usdc, format_amount(amount)) for _ in range(ops)
        ]
        chain.sign_and_submit(wallets[source], payments)


def _total_xlm(chain: SandboxChain) -> int:
    return sum(a.xlm for a in chain.state.accounts.values()) + chain.state.fee_pool


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps)
def test_usdc_changes_only_by_mint_and_burn(steps: list[Step]) -> None:
    chain = SandboxChain(SandboxClock(1_700_000_000), seed=5)
    wallets = [chain.activate(usdc=10 * USDC) for _ in range(WALLETS)]
    ghost = chain.new_keypair().public_key
    xlm_before = _total_xlm(chain)
    for step in steps:
        _run(chain, step, wallets, ghost)
        assert chain.total_usdc() == chain.minted_usdc() - chain.burned_usdc()
        assert all((chain.usdc_balance(w.public_key) or 0) >= 0 for w in wallets)
    # No friendbot after setup: XLM only moves between accounts and into the fee pool.
    assert _total_xlm(chain) == xlm_before
