"""Users, their wallets and their balances (api.md 3.3, 3.4)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from offerhub_client._call import M, Resource, endpoint, paginated
from offerhub_client.models.common import AmountIn, Page
from offerhub_client.models.users import (
    AirtmLink,
    Balance,
    BalanceAdjustment,
    BalanceAdjustmentCreate,
    DepositInstructions,
    User,
    UserCreate,
    Wallet,
    WalletTransaction,
)

__all__ = ["Balances", "Users", "Wallets"]

When = datetime | str | None


class Users(Resource[M]):
    """``client.users``: create (idempotent on ``external_user_id``), read, link Airtm."""

    @endpoint("POST", "/users", User, body=UserCreate)
    @staticmethod
    def create(
        *,
        external_user_id: str,
        email: str | None = None,
        type: Literal["BUYER", "SELLER", "BOTH"] | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Create a user with a custodial Stellar wallet (or return the existing one)."""
        return locals()

    @endpoint("GET", "/users", Page[User])
    @staticmethod
    def list(
        *,
        external_user_id: str | None = None,
        type: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        created_after: When = None,
        created_before: When = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of users, newest first."""
        return locals()

    list_all = paginated(list)

    @endpoint("GET", "/users/{user_id}", User)
    @staticmethod
    def get(user_id: str) -> dict[str, Any]:
        """One user."""
        return locals()

    @endpoint("POST", "/users/{user_id}/airtm/link", User, body=AirtmLink)
    @staticmethod
    def link_airtm(
        user_id: str, *, email: str, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Link the user's Airtm account (must be active and verified)."""
        return locals()


class Wallets(Resource[M]):
    """``client.wallets``: a user's Stellar wallet, deposit address and transactions."""

    @endpoint("GET", "/users/{user_id}/wallet", Wallet)
    @staticmethod
    def get(user_id: str) -> dict[str, Any]:
        """The wallet, with its live on-chain balance."""
        return locals()

    @endpoint("GET", "/users/{user_id}/wallet/deposit", DepositInstructions)
    @staticmethod
    def deposit_instructions(user_id: str) -> dict[str, Any]:
        """Where to send USDC to credit the user."""
        return locals()

    @endpoint("GET", "/users/{user_id}/wallet/transactions", Page[WalletTransaction])
    @staticmethod
    def transactions(
        user_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page of the wallet's operations, newest first, live from Horizon."""
        return locals()

    transactions_all = paginated(transactions)


class Balances(Resource[M]):
    """``client.balances``: ledger balances and audited admin adjustments."""

    @endpoint("GET", "/users/{user_id}/balance", Balance)
    @staticmethod
    def get(user_id: str, *, as_of: When = None) -> dict[str, Any]:
        """``available``, ``reserved``, ``total`` now, or at ``as_of``."""
        return locals()

    @endpoint(
        "POST",
        "/users/{user_id}/balance/adjustments",
        BalanceAdjustment,
        body=BalanceAdjustmentCreate,
    )
    @staticmethod
    def adjust(
        user_id: str,
        *,
        direction: Literal["CREDIT", "DEBIT"],
        amount: AmountIn,
        reason: str,
        reference: str | None = None,
        counter_account: Literal["fees:platform", "external:stellar", "external:airtm"]
        | None = None,
        currency: Literal["USD"] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Credit or debit the user against a counter account (``admin`` scope)."""
        return locals()
