"""The in-memory model of one marketplace: what every balance, state and account must be.

Plain Python, no I/O. The rules tell it what happened (``World.reserve``, ``World.settle``
...), read it to decide what an action must answer, and the invariants compare it with the
API: every user's balances and wallet, every resource's state and, through
:meth:`World.accounts`, every line of the trial balance. Amounts are integer stroops (scale
7); fees follow providers.md 1.7 (integer floors: platform fee 5 % and Trustless Work fee
0.3 % on the whole escrow, shared pro rata between the parties of a split).
"""

from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "ESCROWED",
    "PLATFORM_FEE_BPS",
    "TW_FEE_BPS",
    "USDC",
    "DisputeM",
    "OrderM",
    "TopUpM",
    "UserM",
    "WithdrawalM",
    "World",
    "payouts",
]

USDC: Final = 10_000_000
PLATFORM_FEE_BPS: Final = 500
TW_FEE_BPS: Final = 30
# Order states at rest in which the escrow contract holds the order's money.
ESCROWED: Final = frozenset({"IN_PROGRESS", "DISPUTED"})
# Order states at rest in which the buyer's reservation is still a pending transfer.
_RESERVED: Final = frozenset({"FUNDS_RESERVED", "ESCROW_FUNDING"})


def payouts(release: int, refund: int) -> list[tuple[str, int, int, int]]:
    """``(party, net, platform fee, Trustless Work fee)`` of each share (providers.md 1.7)."""
    total = release + refund
    platform, trustless_work = total * PLATFORM_FEE_BPS // 10_000, total * TW_FEE_BPS // 10_000
    shares = []
    for party, gross in (("SELLER", release), ("BUYER", refund)):
        if gross:
            pf, tw = gross * platform // total, gross * trustless_work // total
            shares.append((party, gross - pf - tw, pf, tw))
    return shares


@dataclass
class UserM:
    """A user: ledger posted balance, reservations, and the USDC its wallet holds on chain."""

    id: str
    external_id: str
    address: str
    posted: int = 0
    reserved: int = 0
    wallet: int = 0
    airtm_email: str | None = None
    # Completed Airtm withdrawals: the ledger paid them, the wallet still holds the USDC.
    airtm_paid: int = 0

    @property
    def available(self) -> int:
        """Posted minus pending debits (api.md 4, Balance)."""
        return self.posted - self.reserved


@dataclass
class OrderM:
    """An order, its latest escrow's status and its milestones (ref -> status)."""

    id: str
    buyer: str
    seller: str
    amount: int
    milestones: dict[str, str]
    status: str = "ORDER_CREATED"
    escrow: str | None = None
    close_reason: str | None = None
    dispute: str | None = None


@dataclass
class DisputeM:
    """A dispute of an order."""

    id: str
    order_id: str
    status: str = "OPEN"


@dataclass
class TopUpM:
    """An Airtm top-up."""

    id: str
    user: str
    amount: int
    status: str
    payin_id: str | None


@dataclass
class WithdrawalM:
    """A withdrawal (``kind`` crypto or airtm_balance)."""

    id: str
    user: str
    amount: int
    kind: str
    status: str
    payout_id: str | None = None


@dataclass
class World:
    """Every resource of the marketplace and the balance of every system account."""

    treasury_funded: int
    users: dict[str, UserM] = field(default_factory=dict)
    orders: dict[str, OrderM] = field(default_factory=dict)
    disputes: dict[str, DisputeM] = field(default_factory=dict)
    topups: dict[str, TopUpM] = field(default_factory=dict)
    withdrawals: dict[str, WithdrawalM] = field(default_factory=dict)
    fees_platform: int = 0
    fees_trustless_work: int = 0
    deposits: int = 0
    topups_in: int = 0
    crypto_out: int = 0
    airtm_out: int = 0

    # -- money in and out ------------------------------------------------------------------

    def deposit(self, user: UserM, amount: int) -> None:
        """USDC paid to the wallet on chain, credited by the deposit monitor."""
        user.posted += amount
        user.wallet += amount
        self.deposits += amount

    def topup_succeeded(self, topup: TopUpM) -> None:
        """Credited at CONFIRMED; the treasury then delivers the USDC to the wallet."""
        user = self.users[topup.user]
        topup.status = "TOPUP_SUCCEEDED"
        user.posted += topup.amount
        user.wallet += topup.amount
        self.topups_in += topup.amount

    def withdrawal_created(self, withdrawal: WithdrawalM) -> None:
        """The hold: pending ``user -> clearing:withdrawals``."""
        self.withdrawals[withdrawal.id] = withdrawal
        self.users[withdrawal.user].reserved += withdrawal.amount

    def withdrawal_ended(self, withdrawal: WithdrawalM, status: str) -> None:
        """Completion posts the hold (the money leaves); failure and cancel void it."""
        user = self.users[withdrawal.user]
        withdrawal.status = status
        user.reserved -= withdrawal.amount
        if status != "WITHDRAWAL_COMPLETED":
            return
        user.posted -= withdrawal.amount
        if withdrawal.kind == "crypto":
            user.wallet -= withdrawal.amount
            self.crypto_out += withdrawal.amount
        else:
            user.airtm_paid += withdrawal.amount
            self.airtm_out += withdrawal.amount

    # -- orders ----------------------------------------------------------------------------

    def reserve(self, order: OrderM) -> None:
        """Pending ``user:<buyer> -> escrow:<ord>``."""
        order.status = "FUNDS_RESERVED"
        self.users[order.buyer].reserved += order.amount

    def cancel(self, order: OrderM) -> None:
        """Void the reservation, if any; CLOSED (CANCELED)."""
        if order.status == "FUNDS_RESERVED":
            self.users[order.buyer].reserved -= order.amount
        order.status, order.close_reason = "CLOSED", "CANCELED"

    def fund(self, order: OrderM) -> None:
        """The buyer's USDC moves into the contract; the reservation is posted."""
        buyer = self.users[order.buyer]
        buyer.reserved -= order.amount
        buyer.posted -= order.amount
        buyer.wallet -= order.amount
        order.status, order.escrow = "IN_PROGRESS", "FUNDED"

    def settle(self, order: OrderM, release: int, refund: int, close_reason: str) -> None:
        """The contract pays the shares net of fees; the order closes."""
        for party, net, pf, tw in payouts(release, refund):
            user = self.users[order.seller if party == "SELLER" else order.buyer]
            user.posted += net
            user.wallet += net
            self.fees_platform += pf
            self.fees_trustless_work += tw
        order.status, order.close_reason = "CLOSED", close_reason
        order.escrow = "REFUNDED" if close_reason == "REFUNDED" else "RELEASED"

    # -- what the books must say -------------------------------------------------------------

    def accounts(self) -> dict[str, tuple[int, int, int]]:
        """Trial-balance lines: code -> (balance, debits pending, credits pending)."""
        users = self.users.values()
        open_holds = sum(
            w.amount for w in self.withdrawals.values() if w.status in _OPEN_WITHDRAWALS
        )
        return {
            "user:*": (
                sum(u.posted for u in users),
                sum(u.reserved for u in users),
                0,
            ),
            "escrow:*": (
                sum(o.amount for o in self.orders.values() if o.status in ESCROWED),
                0,
                sum(o.amount for o in self.orders.values() if o.status in _RESERVED),
            ),
            "fees:platform": (self.fees_platform, 0, 0),
            "fees:trustless_work": (self.fees_trustless_work, 0, 0),
            "treasury:stellar": (self.treasury_funded - self.topups_in, 0, 0),
            # The sandbox's Airtm takes no fee: the whole payin lands in the platform account.
            "treasury:airtm": (self.topups_in, 0, 0),
            "clearing:topups": (0, 0, 0),
            "clearing:withdrawals": (0, 0, open_holds),
            "external:stellar": (self.treasury_funded + self.deposits - self.crypto_out, 0, 0),
            "external:airtm": (self.topups_in - self.airtm_out, 0, 0),
        }


_OPEN_WITHDRAWALS: Final = frozenset(
    {
        "WITHDRAWAL_CREATED",
        "WITHDRAWAL_COMMITTED",
        "WITHDRAWAL_PENDING",
        "WITHDRAWAL_PENDING_USER_ACTION",
    }
)
