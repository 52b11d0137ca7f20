"""The seam between the chain and contract simulators (Trustless Work): ``invoke_host_function``.

The chain does not run contracts. A simulator that builds a transaction registers an *intent*
for its hash (``SandboxChain.register_intent(hash, apply_fn)``). When that transaction passes
the pipeline, the chain calls ``apply_fn(call)`` with a :class:`HostCall` on the transaction's
working copy of the ledger:

- ``call.transfer(from_, to, amount)`` moves USDC between accounts (G..., need a trustline)
  and contracts (C...), and records the ``asset_balance_changes`` Horizon shows;
- raising :class:`HostFunctionTrapped` fails the operation with ``op_trapped`` (the fee is
  still charged, every transfer is rolled back);
- ``call.on_commit(fn)`` defers the simulator's own state changes (escrow flags) until the
  transaction has committed, so a rolled-back transaction leaves the simulator untouched too.
"""

from collections.abc import Callable

from stellar_sdk import StrKey
from stellar_sdk.operation import InvokeHostFunction

from providers.sandbox.chain_state import LedgerState
from providers.stellar.port import AssetBalanceChange

__all__ = ["HostCall", "HostFunctionTrapped", "IntentApply"]


class HostFunctionTrapped(Exception):
    """The simulated contract call failed (stellar-core ``op_trapped``)."""


class HostCall:
    """One ``invoke_host_function`` being applied; see the module docstring."""

    def __init__(
        self,
        state: LedgerState,
        *,
        tx_hash: str,
        source: str,
        operation: InvokeHostFunction,
        usdc_key: str,
    ) -> None:
        self._state = state
        self.tx_hash = tx_hash
        self.source = source
        self.operation = operation
        self.usdc_key = usdc_key
        self.usdc_code, self.usdc_issuer = usdc_key.split(":", 1)
        self.changes: list[AssetBalanceChange] = []
        self.commit_hooks: list[Callable[[], None]] = []

    def usdc_balance(self, address: str) -> int:
        """USDC held by an account (0 without a trustline) or a contract."""
        if StrKey.is_valid_contract(address):
            return self._state.contracts.get(address, 0)
        account = self._state.accounts.get(address)
        line = account.trustlines.get(self.usdc_key) if account else None
        return line.balance if line else 0

    def transfer(self, from_address: str, to_address: str, amount: int) -> None:
        """Move ``amount`` USDC stroops; trap on a missing trustline or insufficient balance."""
        if amount <= 0:
            raise HostFunctionTrapped("transfer amount must be positive")
        self._debit(from_address, amount)
        self._credit(to_address, amount)
        self.changes.append(
            AssetBalanceChange(
                asset_code=self.usdc_code,
                asset_issuer=self.usdc_issuer,
                type="transfer",
                from_address=from_address,
                to_address=to_address,
                amount=amount,
            )
        )

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` after the transaction commits (never if it is rolled back)."""
        self.commit_hooks.append(hook)

    def _debit(self, address: str, amount: int) -> None:
        if StrKey.is_valid_contract(address):
            balance = self._state.contracts.get(address, 0)
            if balance < amount:
                raise HostFunctionTrapped(f"contract {address} holds {balance} < {amount}")
            self._state.contracts[address] = balance - amount
            return
        account = self._state.accounts.get(address)
        line = account.trustlines.get(self.usdc_key) if account else None
        if line is None or line.balance < amount:
            raise HostFunctionTrapped(f"{address} cannot pay {amount}")
        line.balance -= amount

    def _credit(self, address: str, amount: int) -> None:
        if StrKey.is_valid_contract(address):
            self._state.contracts[address] = self._state.contracts.get(address, 0) + amount
            return
        account = self._state.accounts.get(address)
        line = account.trustlines.get(self.usdc_key) if account else None
        if line is None or line.balance + amount > line.limit:
            raise HostFunctionTrapped(f"{address} cannot receive {amount}")
        line.balance += amount


IntentApply = Callable[[HostCall], None]
