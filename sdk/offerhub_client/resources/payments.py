"""Top-ups (Airtm payins) and withdrawals (api.md 3.7, 3.8)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from offerhub_client._call import M, Resource, endpoint, paginated
from offerhub_client.models.common import AmountIn, Page
from offerhub_client.models.payments import (
    TopUp,
    TopUpCancel,
    TopUpCreate,
    Withdrawal,
    WithdrawalCancel,
    WithdrawalCreate,
)

__all__ = ["TopUps", "Withdrawals"]

Filter = str | Sequence[str] | None
When = datetime | str | None


class TopUps(Resource[M]):
    """``client.topups``: fiat in through Airtm; the payer confirms at ``confirmation_uri``."""

    @endpoint("POST", "/topups", TopUp, body=TopUpCreate)
    @staticmethod
    def create(
        *,
        user_id: str,
        amount: AmountIn,
        currency: Literal["USD"] | None = None,
        description: str | None = None,
        return_url: str | None = None,
        cancel_url: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Create a top-up (``TOPUP_AWAITING_USER_CONFIRMATION``; 202 ``TOPUP_CREATED``)."""
        return locals()

    @endpoint("GET", "/topups", Page[TopUp])
    @staticmethod
    def list(
        *,
        user_id: str | None = None,
        status: Filter = None,
        created_after: When = None,
        created_before: When = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of top-ups, newest first."""
        return locals()

    list_all = paginated(list)

    @endpoint("GET", "/topups/{topup_id}", TopUp)
    @staticmethod
    def get(topup_id: str) -> dict[str, Any]:
        """One top-up."""
        return locals()

    @endpoint("POST", "/topups/{topup_id}/refresh", TopUp)
    @staticmethod
    def refresh(topup_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Read the payin at Airtm now and apply its status."""
        return locals()

    @endpoint("POST", "/topups/{topup_id}/cancel", TopUp, body=TopUpCancel)
    @staticmethod
    def cancel(
        topup_id: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Cancel a top-up the payer has not confirmed (``TOPUP_CANCELED``)."""
        return locals()


class Withdrawals(Resource[M]):
    """``client.withdrawals``: money out to a Stellar address or an Airtm account."""

    @endpoint("POST", "/withdrawals", Withdrawal, body=WithdrawalCreate)
    @staticmethod
    def create(
        *,
        user_id: str,
        amount: AmountIn,
        destination_type: Literal["crypto", "airtm_balance"],
        destination_ref: str | None = None,
        currency: Literal["USD"] | None = None,
        memo: str | None = None,
        commit: bool | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Create a withdrawal; a hold is placed on the balance until it ends."""
        return locals()

    @endpoint("GET", "/withdrawals", Page[Withdrawal])
    @staticmethod
    def list(
        *,
        user_id: str | None = None,
        status: Filter = None,
        destination_type: str | None = None,
        created_after: When = None,
        created_before: When = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of withdrawals, newest first."""
        return locals()

    list_all = paginated(list)

    @endpoint("GET", "/withdrawals/{withdrawal_id}", Withdrawal)
    @staticmethod
    def get(withdrawal_id: str) -> dict[str, Any]:
        """One withdrawal."""
        return locals()

    @endpoint("POST", "/withdrawals/{withdrawal_id}/commit", Withdrawal)
    @staticmethod
    def commit(withdrawal_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Commit an Airtm withdrawal created with ``commit=False``."""
        return locals()

    @endpoint("POST", "/withdrawals/{withdrawal_id}/refresh", Withdrawal)
    @staticmethod
    def refresh(withdrawal_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Read the payout or transaction now and apply its status."""
        return locals()

    @endpoint("POST", "/withdrawals/{withdrawal_id}/cancel", Withdrawal, body=WithdrawalCancel)
    @staticmethod
    def cancel(
        withdrawal_id: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Cancel (``WITHDRAWAL_CREATED``, or Airtm ``..._PENDING_USER_ACTION``); hold voided."""
        return locals()
