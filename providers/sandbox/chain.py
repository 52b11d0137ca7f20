"""The sandbox chain: :class:`ChainCore` plus its sandbox-held accounts and test helpers.

Sandbox-held accounts (deterministic keys from the seed): ``root`` (funds friendbot),
``issuer`` (USDC; paying USDC mints it, receiving burns it), ``tw_fee`` (Trustless Work's fee
address) and ``outside`` (the "outside world" that sends deposits). Helpers that move money
(friendbot, mint, deposit) build and sign real transactions and go through the normal
pipeline, so they appear in ``/payments`` exactly like chain activity would. Only
:meth:`SandboxChain.tamper` and the contract hooks change balances with no transaction.
"""

import random
from collections.abc import Sequence
from typing import Final, Literal

from stellar_sdk import Account, Asset, Keypair, Operation, TransactionBuilder
from stellar_sdk.operation import ChangeTrust, CreateAccount, Payment

from common.money import format_amount
from providers.sandbox.chain_core import ChainCore, Submission
from providers.sandbox.chain_state import AccountEntry, asset_key
from providers.sandbox.clock import SandboxClock
from providers.stellar.keys import STANDALONE_PASSPHRASE

__all__ = ["FRIENDBOT_XLM", "SandboxChain", "Submission"]

FRIENDBOT_XLM: Final = 10_000 * 10_000_000
_ROOT_XLM: Final = 100_000_000_000 * 10_000_000
_HELPER_TIMEOUT_S: Final = 300


class SandboxChain(ChainCore):
    """The simulated Stellar network shared by the sandbox's Horizon and Trustless Work apps."""

    def __init__(
        self,
        clock: SandboxClock | None = None,
        *,
        seed: int = 0,
        passphrase: str = STANDALONE_PASSPHRASE,
        base_fee: int = 100,
        seconds_per_ledger: int = 5,
    ) -> None:
        # Not for secrets: seeded so that keys, and so every hash, repeat run after run.
        self._rng = random.Random(seed)  # noqa: S311
        self.root = self.new_keypair()
        self.issuer = self.new_keypair()
        self.tw_fee = self.new_keypair()
        self.outside = self.new_keypair()
        super().__init__(
            clock or SandboxClock(),
            passphrase=passphrase,
            usdc_key=asset_key("USDC", self.issuer.public_key),
            base_fee=base_fee,
            seconds_per_ledger=seconds_per_ledger,
        )
        self.usdc = Asset("USDC", self.issuer.public_key)
        # Balances changed with no transaction (tamper, contract hooks), for conservation checks.
        self.adjusted_usdc = 0
        self.state.accounts[self.root.public_key] = AccountEntry(
            account_id=self.root.public_key, sequence=0, xlm=_ROOT_XLM
        )
        for keypair in (self.issuer, self.tw_fee, self.outside):
            self._expect(self.friendbot(keypair.public_key))
        for keypair in (self.tw_fee, self.outside):
            self._expect(self.trust_usdc(keypair))

    def new_keypair(self) -> Keypair:
        """A deterministic keypair from the chain's seeded RNG."""
        return Keypair.from_raw_ed25519_seed(self._rng.randbytes(32))

    def sign_and_submit(
        self,
        signer: Keypair,
        operations: Sequence[Operation],
        *,
        memo: str | None = None,
        extra_signers: tuple[Keypair, ...] = (),
    ) -> Submission:
        """Build a tx on ``signer``'s current sequence, sign it, run it through the pipeline."""
        entry = self.account(signer.public_key)
        assert entry is not None, "the signer must exist"
        builder = TransactionBuilder(
            Account(signer.public_key, entry.sequence), self.passphrase, self.base_fee
        )
        for op in operations:
            builder.append_operation(op)
        if memo is not None:
            builder.add_text_memo(memo)
        builder.add_time_bounds(0, self.clock.now_s() + _HELPER_TIMEOUT_S)
        envelope = builder.build()
        for keypair in (signer, *extra_signers):
            envelope.sign(keypair)
        return self.submit(envelope.to_xdr())

    def friendbot(self, address: str, *, xlm: int = FRIENDBOT_XLM) -> Submission:
        """Create ``address`` with 10,000 XLM (fails ``op_already_exists`` if it exists)."""
        return self.sign_and_submit(self.root, [CreateAccount(address, format_amount(xlm))])

    def trust_usdc(self, keypair: Keypair) -> Submission:
        """Open a USDC trustline on ``keypair``'s account."""
        return self.sign_and_submit(keypair, [ChangeTrust(self.usdc)])

    def activate(self, keypair: Keypair | None = None, *, usdc: int = 0) -> Keypair:
        """Friendbot + USDC trustline (+ ``usdc`` minted to it); returns the keypair."""
        keypair = keypair or self.new_keypair()
        self._expect(self.friendbot(keypair.public_key))
        self._expect(self.trust_usdc(keypair))
        if usdc:
            self._expect(self.mint(keypair.public_key, usdc))
        return keypair

    def mint(self, to: str, amount: int) -> Submission:
        """The issuer pays ``amount`` USDC stroops to ``to`` (new money)."""
        return self.sign_and_submit(self.issuer, [Payment(to, self.usdc, format_amount(amount))])

    def deposit(
        self,
        to: str,
        amount: int,
        *,
        asset: Literal["USDC", "XLM"] = "USDC",
        memo: str | None = None,
        ops: int = 1,
    ) -> Submission:
        """An external deposit from the outside-world account: ``ops`` payments of ``amount`` each.

        The outside world is topped up by minting first if it lacks the USDC, so the deposit
        itself is an ordinary payment (and fails like one: ``op_no_trust``, ...).
        """
        if ops < 1:
            raise ValueError("a deposit has at least one operation")
        if asset == "USDC":
            shortfall = amount * ops - (self.usdc_balance(self.outside.public_key) or 0)
            if shortfall > 0:
                self._expect(self.mint(self.outside.public_key, shortfall))
        paid = self.usdc if asset == "USDC" else Asset.native()
        payments: list[Operation] = [Payment(to, paid, format_amount(amount)) for _ in range(ops)]
        return self.sign_and_submit(self.outside, payments, memo=memo)

    def operation_ids(self, tx_hash: str) -> list[str]:
        """The payment-record ids of a stored transaction, in order."""
        return [str(r.id) for r in self.operations if r.tx_hash == tx_hash]

    def tamper(self, address: str, usdc_delta: int) -> int:
        """Change an account's or contract's USDC with no transaction; returns the new balance."""
        if address.startswith("C"):
            balance = self.state.contracts.get(address, 0) + usdc_delta
            if balance < 0:
                raise ValueError("a contract balance cannot go negative")
            self.state.contracts[address] = balance
        else:
            entry = self.account(address)
            line = entry.trustlines.get(self.usdc_key) if entry else None
            if line is None or line.balance + usdc_delta < 0:
                raise ValueError(f"{address} has no USDC trustline able to take {usdc_delta}")
            line.balance += usdc_delta
            balance = line.balance
        self.adjusted_usdc += usdc_delta
        return balance

    def credit_contract(self, contract_id: str, amount: int) -> None:
        """Add USDC to a contract with no transaction (seeding); prefer intents for real flows."""
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.tamper(contract_id, amount)

    def debit_contract(self, contract_id: str, amount: int) -> None:
        """Take USDC from a contract with no transaction; refuses to go below zero."""
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.tamper(contract_id, -amount)

    def contract_balance(self, contract_id: str) -> int:
        """USDC held by a contract."""
        return self.state.contracts.get(contract_id, 0)

    def set_memo_required(self, address: str, required: bool = True) -> None:
        """Set or clear the SEP-29 data entry ``config.memo_required`` on an account."""
        entry = self.account(address)
        assert entry is not None
        if required:
            entry.data["config.memo_required"] = b"1"
        else:
            entry.data.pop("config.memo_required", None)

    def bump_sequence(self, address: str, by: int = 1) -> None:
        """Model a tx sent by someone else from ``address``: its next tx gets ``tx_bad_seq``."""
        entry = self.account(address)
        assert entry is not None
        entry.sequence += by

    def advance(self, seconds: float) -> float:
        """Move the sandbox clock forward."""
        return self.clock.advance(seconds)

    def minted_usdc(self) -> int:
        """USDC minted so far (issuer payments)."""
        return self.state.minted.get(self.usdc_key, 0)

    def burned_usdc(self) -> int:
        """USDC burned so far (payments to the issuer)."""
        return self.state.burned.get(self.usdc_key, 0)

    @staticmethod
    def _expect(submission: Submission) -> None:
        if not submission.successful:
            codes = submission.tx.result_codes if submission.tx else submission.result
            raise RuntimeError(f"sandbox helper transaction failed: {codes}")
